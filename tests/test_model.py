import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from lens.corpus import Corpus
from lens.embeddings import Embedder
from lens.model import UNK, Committee, ModelConfig, ModelFeatures, ModelLens, QueryFeatures, Vocabulary, name_tokens
from lens.names import NUM_SIZE_BUCKETS, UNKNOWN_FAMILY
from lens.rankers import Context, Query
from lens.rankers.modellens import ModelLensRanker
from lens.splits import make_split
from lens.training import LensConfig, TrainConfig

TINY = ModelConfig(id_dim=8, token_dim=8, name_buckets=512, size_dim=4, family_dim=4, group_id_dim=8, task_dim=4,
                   metric_dim=4, hidden=16)  # fmt: skip


def synthetic(
    n_models: int = 30, n_queries: int = 5, text_dim: int = 12
) -> tuple[Vocabulary, ModelFeatures, QueryFeatures]:
    generator = torch.Generator().manual_seed(0)
    vocab = Vocabulary(
        models=tuple(f"m{i}" for i in range(n_models - 5)),  # the last five models are unseen: [UNK]
        groups=("g0", "g1"),
        tasks=("t0", "t1"),
        metrics=("acc",),
        families=(UNKNOWN_FAMILY, "llama", "qwen"),
    )
    tokens = torch.randint(0, TINY.name_buckets + 1, (n_models, 4), generator=generator)
    models = ModelFeatures(
        id_index=torch.tensor([vocab.model(f"m{i}") for i in range(n_models)]),
        name_tokens=tokens,
        text=torch.nn.functional.normalize(torch.randn(n_models, text_dim, generator=generator), dim=1),
        size_bucket=torch.randint(0, NUM_SIZE_BUCKETS, (n_models,), generator=generator),
        family=torch.randint(0, 3, (n_models,), generator=generator),
    )
    queries = QueryFeatures(
        id_index=torch.tensor([1, 2, 0, 0, 1][:n_queries]),
        description=torch.nn.functional.normalize(torch.randn(n_queries, text_dim, generator=generator), dim=1),
        task=torch.tensor([1, 2, 0, 1, 2][:n_queries]),
        metric=torch.tensor([1, 1, 0, 1, 0][:n_queries]),
    )
    return vocab, models, queries


def test_name_tokens_keep_parts_but_not_the_whole_name():
    assert name_tokens("meta-llama/Llama-2-7b-hf") == ["meta", "llama", "2", "7b", "hf"]
    assert name_tokens("Qwen/Qwen2.5-7B_instruct") == ["qwen", "qwen2.5", "7b", "instruct"]
    assert name_tokens("  ") == []


def test_vocabulary_round_trips_through_json_and_maps_unseen_entities_to_unk():
    vocab, _, _ = synthetic()
    restored = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored == vocab
    assert restored.model("m0") == 1 and restored.model("never-seen") == UNK
    assert restored.group("g1") == 2 and restored.group("new") == UNK
    assert restored.task("t1") == 2 and restored.task("new") == UNK
    assert restored.metric("acc") == 1 and restored.metric("wer") == UNK
    assert restored.family("qwen") == 2 and restored.family("brand-new") == restored.family(UNKNOWN_FAMILY)
    with pytest.raises(ValueError, match="unknown"):
        Vocabulary(models=(), groups=(), tasks=(), metrics=(), families=("llama",))


def test_model_config_rejects_bad_values():
    with pytest.raises(ValueError, match="hidden"):
        ModelConfig(hidden=0)
    with pytest.raises(ValueError, match="model_id_dropout"):
        ModelConfig(model_id_dropout=1.0)
    with pytest.raises(ValueError, match="evidence_floor < evidence_full"):
        ModelConfig(evidence_floor=0.9, evidence_full=0.4)


def test_decomposition_equals_the_forward_pass_and_the_unsplit_first_layer():
    vocab, models, queries = synthetic()
    torch.manual_seed(0)
    model = ModelLens(TINY, vocab, text_dim=12).eval()
    evidence = torch.randn(len(queries), len(models), 1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        side = model.model_side(models)
        parts = torch.stack(
            [model.score_from_parts(side, q, e) for q, e in zip(model.query_side(queries), evidence, strict=True)]
        )
        rows = torch.arange(len(models))
        forward = torch.stack(
            [model(models, queries.take(torch.full_like(rows, i)), evidence[i]).score for i in range(len(queries))]
        )
        # The published architecture: one Linear over [model views, query views], plus the weighted evidence.
        inputs = (model.model_in, model.query_in)
        first = torch.nn.Linear(sum(layer.in_features for layer in inputs), TINY.hidden)
        first.weight.copy_(torch.cat([layer.weight for layer in inputs], dim=1))
        first.bias.copy_(model.query_in.bias)
        model_views, structure = model.model_views(models)
        prior = model.prior(structure).squeeze(1)
        unsplit = []
        for i in range(len(queries)):
            query_views = model.query_views(queries.take(torch.full_like(rows, i)))
            pre = first(torch.cat([model_views, query_views], dim=1))
            hidden = torch.relu(model.layer2(torch.relu(pre)))
            unsplit.append(
                (model.score_head(hidden).squeeze(1) + prior) / model.temperature
                + TINY.evidence_weight * evidence[i, :, 0]
            )
    assert parts.shape == (len(queries), len(models))
    torch.testing.assert_close(parts, forward, atol=1e-5, rtol=0)
    torch.testing.assert_close(parts, torch.stack(unsplit), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="evidence"):  # serving must not forget the evidence term
        model.score_from_parts(side, model.query_side(queries)[0])


def test_a_committee_scores_the_mean_of_its_members_through_the_same_decomposition():
    vocab, models, queries = synthetic()
    torch.manual_seed(0)
    members = [ModelLens(TINY, vocab, text_dim=12).eval() for _ in range(3)]
    committee = Committee(members).eval()
    evidence = torch.randn(len(models), 1, generator=torch.Generator().manual_seed(1))
    rows = torch.zeros(len(models), dtype=torch.long)
    with torch.no_grad():
        side = committee.model_side(models)
        assert side.pre.shape == (len(models), 3 * TINY.hidden) and side.prior.shape == (len(models), 3)
        parts = committee.score_from_parts(side, committee.query_side(queries.take(rows[:1])), evidence)
        each = torch.stack([m(models, queries.take(rows), evidence).score for m in members])
        shortlist = torch.tensor([3, 0, 7])  # serving's second stage takes rows of the precomputed side
        taken = committee.score_from_parts(
            side.take(shortlist), committee.query_side(queries.take(rows[:1])), evidence[shortlist]
        )
    torch.testing.assert_close(parts, each.mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(committee(models, queries.take(rows), evidence).score, parts, atol=1e-5, rtol=0)
    torch.testing.assert_close(taken, parts[shortlist], atol=1e-5, rtol=0)
    assert (each - each.mean(0)).abs().max() > 1e-3  # differently initialised members: the mean is not any one


def test_id_dropout_replaces_ids_only_in_training():
    vocab, models, queries = synthetic()
    torch.manual_seed(0)
    model = ModelLens(dataclasses.replace(TINY, model_id_dropout=0.5), vocab, text_dim=12)
    rows = torch.zeros(len(models), dtype=torch.long)
    evidence = torch.zeros(len(models), 1)
    model.eval()
    assert torch.equal(
        model(models, queries.take(rows), evidence).score, model(models, queries.take(rows), evidence).score
    )
    model.train()
    model.dropout.p = 0.0  # isolate ID dropout from ordinary dropout
    assert not torch.equal(
        model(models, queries.take(rows), evidence).score, model(models, queries.take(rows), evidence).score
    )


@pytest.mark.parametrize(
    ("switch", "absent"),
    [("id_views", ["model_id", "group_id"]), ("text_views", []), ("evidence_view", [])],
)
def test_ablation_switches_remove_views_and_their_parameters(switch: str, absent: list[str]):
    vocab, models, queries = synthetic()
    full = ModelLens(TINY, vocab, text_dim=12)
    ablated = ModelLens(dataclasses.replace(TINY, **{switch: False}), vocab, text_dim=12).eval()
    names = {name.split(".")[0] for name, _ in ablated.named_parameters()}
    assert not names & set(absent)
    assert (
        ablated.model_in.in_features + ablated.query_in.in_features
        < (full.model_in.in_features + full.query_in.in_features)
        or switch == "evidence_view"
    )
    rows = torch.zeros(len(models), dtype=torch.long)
    evidence = torch.ones(len(models), 1)
    with torch.no_grad():
        scores = ablated(models, queries.take(rows), evidence).score
        bare = ablated(models, queries.take(rows)).score
    assert torch.isfinite(scores).all()
    # Switching text views or the evidence view off drops the evidence term (the network never reads it).
    assert torch.equal(scores, bare) == (switch != "id_views")


# ----------------------------------------------------------------------------------------------------------------------
# Cold start, on a model trained on real data
# ----------------------------------------------------------------------------------------------------------------------

HELD_OUT_CELL = ("resnet", 4)  # timm's ResNet-50-class models: 95 in the slice, all evaluated on the same groups


@pytest.fixture(scope="module")
def cold_start(slice_corpus: Corpus, embedder: Embedder) -> tuple[ModelLensRanker, Corpus, np.ndarray]:
    """A ranker trained on the new_dataset train part with five ResNet-50-class models removed (unseen models)."""
    parts = make_split(slice_corpus, "new_dataset", seed=2025).partition(slice_corpus)
    models = slice_corpus.models
    cell = models.index[(models["family"] == HELD_OUT_CELL[0]) & (models["size_bucket"] == HELD_OUT_CELL[1])]
    held = cell[:5].to_numpy(copy=True)  # pandas hands out read-only arrays, which torch warns about
    train = parts.train.restrict(~parts.train.records["model_id"].isin(held).to_numpy())
    config = LensConfig(TINY, TrainConfig(max_epochs=4, patience=4, progress=False))
    ranker = ModelLensRanker(Context(embedder, seed=2025), config).fit(train)
    return ranker, parts.test, held


def test_unseen_models_get_the_unk_id_and_keep_their_content(cold_start):
    ranker, _, held = cold_start
    features = ranker.trained.models.take(torch.tensor(held))
    assert (features.id_index == UNK).all()
    # Different content, different model sides: not one shared [UNK] vector.
    assert len(torch.unique(ranker.side.pre[held], dim=0)) == len(held)


def test_unseen_model_scores_near_its_family_and_size_relatives(cold_start, slice_corpus: Corpus):
    ranker, _, held = cold_start
    groups = slice_corpus.groups
    group_id = int(groups.index[(groups["source"] == "timm")][0])
    query = Query.for_group(groups, group_id)
    evaluated = slice_corpus.records.loc[slice_corpus.records["group_id"] == group_id, "model_id"].to_numpy()
    scores = pd.Series(ranker.score(query, evaluated), index=evaluated)
    models = slice_corpus.models.loc[evaluated]
    cells = models.groupby(["family", "size_bucket"]).groups
    cell_means = {cell: scores[idx].drop(held, errors="ignore").mean() for cell, idx in cells.items() if len(idx) >= 5}
    own = cell_means.pop(HELD_OUT_CELL)
    for model_id in held:
        gaps = np.abs(np.array(list(cell_means.values())) - scores[model_id])
        assert abs(scores[model_id] - own) < np.median(gaps), model_id


def test_the_score_is_the_network_plus_the_weighted_neighbour_evidence(cold_start):
    ranker, test, _ = cold_start
    query = Query.for_group(test.groups, int(test.groups.index[test.groups["trainable"]][0]))
    network, evidence, trust = ranker.terms(query)
    pool = np.arange(len(network))
    assert evidence.any()  # the evidence term moves the score: a known model was observed near this dataset
    assert 0.0 <= trust <= 1.0
    stacked = network + ranker.trained.model.config.evidence_weight * trust * evidence
    assert np.allclose(ranker.score(query, pool), stacked, atol=1e-5)


def test_an_unseen_dataset_is_ranked_from_its_description(cold_start):
    ranker, test, _ = cold_start
    group_id = int(test.groups.index[test.groups["trainable"] & (test.groups["description"] != "")][0])
    query = Query.for_group(test.groups, group_id)
    assert ranker.trained.vocabulary.group(query.group) == UNK
    bare = Query(query.dataset, query.task, query.metric, "", query.source)
    pool = np.arange(len(test.models))
    with_text, without = ranker.score(query, pool), ranker.score(bare, pool)
    assert not np.array_equal(np.argsort(-with_text)[:50], np.argsort(-without)[:50])
