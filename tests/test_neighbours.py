"""Neighbour evidence on real leaderboards: what the network reads about the known datasets nearest a query."""

import numpy as np
import pytest

from lens.corpus import Corpus
from lens.embeddings import Embedder
from lens.model import ModelConfig, QueryFeatures, Vocabulary
from lens.neighbours import NeighbourIndex
from lens.training import TrainingRecords, neighbour_index, query_features, training_evidence


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
    evidence = index.pool(index.weights(queries.description[[group]].numpy(), [task]))[0]
    rows = records.group_id == group
    observed = records.model_id[rows]
    # k = 1: the nearest group is the group itself, with weight 1 -> z / (1 + shrinkage), coverage 1.
    expected = records.z[rows] / (1 + index.shrinkage)
    assert np.allclose(evidence[observed, 0], expected, atol=1e-5)
    assert np.allclose(evidence[observed, 1], 1.0)
    others = np.setdiff1d(np.arange(len(slice_corpus.models)), observed)
    assert not evidence[others].any()  # a model the neighbours never observed has no evidence at all


def test_training_evidence_never_comes_from_the_records_own_benchmark(indexed, slice_corpus: Corpus):
    index, records, queries = indexed
    groups = slice_corpus.groups
    ids = np.unique(records.group_id)
    weights = index.weights(queries.description[ids].numpy(), groups.loc[ids, "task"], groups.loc[ids, "benchmark"])
    own = groups.loc[ids, "benchmark"].to_numpy()
    known = groups.loc[np.unique(records.group_id), "benchmark"].to_numpy()
    rows, cols = weights.nonzero()
    assert len(rows) and not (own[rows] == known[cols]).any()
    assert np.allclose(np.asarray(weights.sum(axis=1)).ravel()[np.diff(weights.indptr) > 0], 1.0)
    evidence = training_evidence(slice_corpus, records, queries, index)
    assert evidence.shape == (len(records.frame), 2) and np.isfinite(evidence).all()
    # Pairs gathered in chunks equal the dense pool evidence of the same queries.
    dense = index.pool(weights)
    positions = np.searchsorted(ids, records.group_id)
    assert np.allclose(evidence, dense[positions, records.model_id], atol=1e-6)


def test_an_unknown_task_reads_the_nearest_groups_of_any_task(indexed):
    index, _, queries = indexed
    weights = index.weights(queries.description[:3].numpy(), ["a task nobody has", "", "x"])
    assert (np.diff(weights.indptr) == 1).all()  # k = 1 neighbour each, found across tasks
