"""Neighbour evidence on real leaderboards: what the network reads about the known datasets nearest a query."""

import numpy as np
import pytest

from lens.corpus import Corpus
from lens.embeddings import Embedder
from lens.model import ModelConfig, QueryFeatures, Vocabulary
from lens.neighbours import NeighbourIndex
from lens.training import TrainingRecords, neighbour_index, query_features


@pytest.fixture(scope="module")
def indexed(slice_corpus: Corpus, embedder: Embedder) -> tuple[NeighbourIndex, TrainingRecords, QueryFeatures]:
    records = TrainingRecords(slice_corpus)
    vocab = Vocabulary.build(records.frame, slice_corpus.groups, slice_corpus.models)
    queries = query_features(slice_corpus, vocab, embedder)
    return neighbour_index(slice_corpus, records.frame, queries, ModelConfig(neighbours=1)), records, queries


def test_a_known_dataset_reads_back_its_own_records(indexed, slice_corpus: Corpus):
    index, records, queries = indexed
    group = int(records.group_id[records.count.argmax()])  # the biggest trainable group
    task = slice_corpus.groups.loc[group, "task"]
    weights = index.weights(queries.description[[group]].numpy(), [task])
    assert index.groups[weights.near[0].indices].tolist() == [group]  # the neighbour is named by its group id
    evidence = index.pool(weights)[0]
    rows = records.group_id == group
    observed = records.model_id[rows]
    # The prior: each model's mean z over the task's groups, shrunk by the same pseudo-weight.
    on_task = slice_corpus.groups["task"].to_numpy()[records.group_id] == task
    total = np.bincount(records.model_id[on_task], records.z[on_task], minlength=len(slice_corpus.models))
    count = np.bincount(records.model_id[on_task], minlength=len(slice_corpus.models))
    prior = total / (count + index.shrinkage)
    # k = 1: the nearest group is the group itself, with weight 1 -> (z + kappa prior) / (1 + kappa), coverage 1.
    expected = (records.z[rows] + index.shrinkage * prior[observed]) / (1 + index.shrinkage)
    assert np.allclose(evidence[observed, 0], expected, atol=1e-5)
    others = np.setdiff1d(np.arange(len(slice_corpus.models)), observed)
    assert np.allclose(evidence[others, 0], prior[others], atol=1e-5)  # unobserved: only the prior speaks for them
    assert not evidence[count == 0, 0].any()  # a model without any record on the task has no evidence at all


def test_pairs_equal_the_pool_and_the_prior_reads_the_querys_task(indexed, slice_corpus: Corpus):
    index, records, queries = indexed
    ids = np.unique(records.group_id)  # the index's groups, in its row order
    tasks = slice_corpus.groups.loc[ids, "task"].to_numpy()
    weights = index.weights(queries.description[ids].numpy(), tasks)
    near = weights.near
    assert np.allclose(np.asarray(near.sum(axis=1)).ravel(), 1.0)
    rows, cols = near.nonzero()
    assert (tasks[rows] == tasks[cols]).all()  # the nearest groups of the query's task
    assert (weights.prior[rows] == index.tasks[cols]).all()  # and the prior of that task
    positions = np.searchsorted(ids, records.group_id)
    evidence = index.pairs(weights, positions, records.model_id)
    assert evidence.shape == (len(records.frame), 1) and np.isfinite(evidence).all()
    # Pairs gathered in chunks equal the dense pool evidence of the same queries.
    dense = index.pool(weights)
    assert np.allclose(evidence, dense[positions, records.model_id], atol=1e-6)


def test_an_unknown_task_reads_the_nearest_groups_of_any_task(indexed):
    index, _, queries = indexed
    weights = index.weights(queries.description[:3].numpy(), ["a task nobody has", "", "x"])
    assert (np.diff(weights.near.indptr) == 1).all()  # k = 1 neighbour each, found across tasks
    assert (weights.prior == len(index.priors) - 1).all()  # and the prior is the mean over every group


def test_evidence_counts_as_much_as_the_nearest_known_dataset_is_near(indexed, slice_corpus: Corpus):
    index, records, queries = indexed
    group = int(records.group_id[records.count.argmax()])
    own = queries.description[group].numpy()
    # A unit vector at cosine 0.7 to the group's own description: halfway up the default ramp (0.5 -> 0.9).
    other = np.random.default_rng(0).standard_normal(own.shape).astype(np.float32)
    other -= (other @ own) * own
    other /= np.linalg.norm(other)
    blurred = 0.7 * own + np.sqrt(1 - 0.7**2) * other
    same_task = [slice_corpus.groups.loc[group, "task"]] * 2
    weights = index.weights(np.stack([own, blurred]), same_task)
    nearest = np.asarray([index.vectors[weights.near[i].indices] @ v for i, v in enumerate([own, blurred])]).max(1)
    assert nearest[0] == pytest.approx(1.0, abs=1e-5) and weights.trust[0] == pytest.approx(1.0, abs=1e-5)
    expected = (nearest[1] - index.floor) / (index.full - index.floor)
    assert 0 < weights.trust[1] < 1 and weights.trust[1] == pytest.approx(expected, abs=1e-5)
    trusted, full = index.pool(weights), index.pool(weights._replace(trust=np.ones(2, dtype=np.float32)))
    assert np.allclose(trusted[1], weights.trust[1] * full[1], atol=1e-6)  # the same evidence, scaled by its trust
    assert np.allclose(trusted[0], full[0], atol=1e-6)
    # Nothing near at all: no evidence, the network alone ranks.
    far = index.weights(-own[None], same_task[:1])
    assert far.trust[0] == 0.0 and not index.pool(far).any()
