"""Bundles and the recommender: a tiny ModelLens trained on real leaderboards, saved, reloaded and queried."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lens import recommender as recommender_module
from lens.bundle import BundleError, load_bundle, save_bundle
from lens.cli import app
from lens.corpus import Corpus
from lens.embeddings import Embedder
from lens.model import ModelConfig, QueryFeatures
from lens.rankers import Query
from lens.recommender import Recommender
from lens.training import LensConfig, TrainConfig, train_committee
from tests.conftest import FIXTURES

TINY = LensConfig(ModelConfig(members=2), TrainConfig(max_epochs=2, max_list=32, progress=False))
ASR = Query("NewASR", "Speech Recognition", "WER", "Accented English conversational speech", higher_is_better=False)


@pytest.fixture(scope="module")
def small(slice_corpus: Corpus) -> Corpus:
    sources = slice_corpus.groups["source"].isin(["open_asr_leaderboard", "alpacaeval", "livebench"]).to_numpy()
    return slice_corpus.restrict(sources[slice_corpus.records["group_id"].to_numpy()])


@pytest.fixture(scope="module")
def bundle_dir(small: Corpus, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    trained = train_committee(small, None, embedder, TINY, seed=1)  # a committee of two networks
    return save_bundle(tmp_path_factory.mktemp("bundle"), trained, small, embedder, TINY)


@pytest.fixture(scope="module")
def recommender(bundle_dir: Path, embedder: Embedder) -> Recommender:
    return Recommender(load_bundle(bundle_dir), embedder)


def test_reloaded_bundle_scores_exactly_like_the_plain_forward_pass(recommender: Recommender):
    bundle = recommender.bundle
    assert len(bundle.model.members) == TINY.model.members == 2
    vector = recommender.embedder.encode([ASR.text])
    query = QueryFeatures.build([ASR.group], [ASR.task], [ASR.metric], vector, bundle.vocabulary)
    rows = torch.arange(0, len(bundle.pool), 97)
    index = recommender.neighbours
    evidence = torch.as_tensor(index.pool(index.weights(vector, [ASR.task]))[0])[rows]
    with torch.no_grad():
        plain = bundle.model(bundle.pool.take(rows), query.take(torch.zeros(len(rows), dtype=torch.long)), evidence)
        plain = plain.score
    assert np.allclose(recommender.pool_scores(ASR)[rows.numpy()], plain.numpy(), atol=1e-5)


def test_the_two_stage_top_k_scores_exactly_and_keeps_the_exact_top(
    recommender: Recommender, small: Corpus, monkeypatch: pytest.MonkeyPatch
):
    """`best` shortlists by a cheap score: what it returns carries exact scores, obeys the filter, and matches the
    exact top-k of the whole pool, here with a shortlist of a quarter of the pool."""
    pool = len(recommender.index)
    monkeypatch.setattr(recommender_module, "SHORTLIST", pool // 4)
    groups = small.groups.drop_duplicates("dataset").head(12)
    recall = []
    for group in groups.itertuples():
        query = Query(group.dataset + " (new)", group.task, group.metric, group.text)
        exact = recommender.pool_scores(query)
        rows, scores = recommender.best(query, 10)
        assert np.allclose(scores, exact[rows], atol=1e-5) and np.all(np.diff(scores) <= 0)
        recall.append(len(set(rows) & set(np.argsort(-exact, kind="stable")[:10])) / 10)
        small_models = np.nan_to_num(recommender.bundle.models["n_parameters"].to_numpy(), nan=np.inf) <= 1e9
        rows, _ = recommender.best(query, 5, small_models)
        assert small_models[rows].all()
    assert np.mean(recall) >= 0.9, recall
    monkeypatch.setattr(recommender_module, "SHORTLIST", pool)  # no cut: the exact ranking, ties in pool order
    rows, scores = recommender.best(ASR, 10)
    exact = recommender.pool_scores(ASR)
    assert list(rows) == list(np.lexsort((np.arange(pool), -exact))[:10])


def test_rank_scores_every_candidate_including_unknown_names(recommender: Recommender):
    candidates = ["openai/whisper-large-v3", "OpenAI/Whisper-Large-V3", "someone/whisper-large-v3-accents-ft", "x"]
    scores = recommender.rank(ASR, candidates)
    assert list(scores) == candidates
    assert all(np.isfinite(v) for v in scores.values())
    assert scores["openai/whisper-large-v3"] == scores["OpenAI/Whisper-Large-V3"]  # one model, any spelling


def test_recommend_respects_size_license_and_family_filters(recommender: Recommender):
    picks = recommender.recommend(ASR, k=5, max_params=1e9)
    assert picks and all(p.n_parameters is not None and p.n_parameters <= 1e9 for p in picks)
    licensed = recommender.recommend(ASR, k=5, licenses=["MIT"])
    assert all((p.license or "").lower() == "mit" for p in licensed)
    whisper = recommender.recommend(ASR, k=3, families=["whisper"])
    assert whisper and all(p.family == "whisper" for p in whisper)


def test_recommend_excludes_models_and_bounds_size_from_below(recommender: Recommender):
    top = recommender.recommend(ASR, k=1)[0].model
    assert top not in [p.model for p in recommender.recommend(ASR, k=5, exclude=[top.upper()])]  # any spelling
    large = recommender.recommend(ASR, k=5, min_params=1e9)
    assert large and all(p.n_parameters is not None and p.n_parameters >= 1e9 for p in large)


def test_recommend_ranks_only_the_candidates_unknown_ones_as_cold_starts(recommender: Recommender):
    candidates = ["openai/whisper-large-v3", "OpenAI/Whisper-Large-V3", "someone/unseen-asr-7b"]
    picks = recommender.recommend(ASR, k=10, candidates=candidates)
    assert sorted(p.model for p in picks) == ["openai/whisper-large-v3", "someone/unseen-asr-7b"]  # first spelling
    unseen = next(p for p in picks if p.model == "someone/unseen-asr-7b")
    assert unseen.evidence == () and unseen.n_parameters == 7e9 and unseen.license is None
    capped = recommender.recommend(ASR, k=10, candidates=candidates, max_params=5e9)
    assert "someone/unseen-asr-7b" not in [p.model for p in capped]  # its name says 7B: over the limit


def test_recommendations_carry_evidence_from_observed_leaderboards(recommender: Recommender):
    picks = recommender.recommend(ASR, k=3, families=["whisper"])
    evidence = [e for p in picks for e in p.evidence]
    assert evidence and all(1 <= e.rank <= e.of for e in evidence)
    assert all(e.value > 0 for e in evidence if e.metric == "WER")  # shown as published, not direction-flipped


def test_loading_something_that_is_not_a_bundle_is_a_clear_error(tmp_path: Path):
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path)


def test_train_then_rank_from_the_command_line(tmp_path: Path, shared_home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MODELLENS_HOME", str(shared_home))
    config = tmp_path / "tiny.yaml"
    config.write_text("training:\n  max_epochs: 2\n  progress: false\n")
    bundle = tmp_path / "model"
    runner = CliRunner()
    corpus = str(FIXTURES / "public_corpus")
    result = runner.invoke(app, ["train", "--corpus", corpus, "--out", str(bundle), "--config", str(config)])
    assert result.exit_code == 0, result.output
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        json.dumps(
            {
                "id": "a",
                "dataset": "birds",
                "description": "bird photos",
                "task": "Image Classification",
                "metric": "accuracy",
                "higher_is_better": True,
                "candidates": ["timm/resnet50.a1_in1k", "brand/new-model-7b"],
            }
        )
        + "\n"
        + json.dumps({"id": "b", "dataset": "x", "description": "", "task": "never seen", "metric": "nor this"})
        + "\n"
    )
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(app, ["rank", "--model", str(bundle), "--queries", str(queries), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["a", "b"]
    assert set(lines[0]["scores"]) == {"timm/resnet50.a1_in1k", "brand/new-model-7b"}
    assert len(lines[1]["scores"]) == len(load_bundle(bundle).models)  # default: every known model
    assert all(np.isfinite(v) for line in lines for v in line["scores"].values())
    result = runner.invoke(app, ["pool", "--model", str(bundle), "--description", "bird photos", "--k", "2"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["pool"]) == 2


def test_a_model_the_corpus_linked_to_its_hub_id_is_known_by_its_displayed_name(recommender: Recommender):
    models = recommender.bundle.models
    linked = models[models["key"].str.contains("/") & ~models["name"].str.contains("/")]
    assert len(linked), "the slice has bare names the corpus joined to hub ids (models.csv.gz hf_id)"
    name, key = linked["name"].iloc[0], linked["key"].iloc[0]
    assert recommender.names.keys([name, name.upper()]) == [key, key]
    scores = recommender.rank(ASR, [name])
    own = recommender.pool_scores(ASR)[recommender.index[key]]
    assert scores[name] == pytest.approx(own, abs=1e-5)  # its own score, not a cold start
