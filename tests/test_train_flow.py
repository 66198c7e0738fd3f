"""The `train` flow on a real record-store snapshot, a real Prefect API and a real MLflow store (sqlite + files)."""

import json
import math
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from flows import tracking
from flows.pyfunc import DEFAULT_K
from flows.registry import CHALLENGER, aliases
from flows.train import TrainingRun, train
from lens.benchmarks import benchmark_family
from lens.corpus import load_corpus
from lens.settings import PROJECT_ROOT, Settings
from lens.splits import STABLE_SPLIT, Split, stable_new_dataset
from lens.store import Store

PNG = b"\x89PNG\r\n\x1a\n"
SEED = 7

pytestmark = pytest.mark.usefixtures("in_home")


@pytest.fixture(scope="module")
def home(platform_home, prefect_harness) -> Path:
    home = platform_home()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELLENS_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def first(home: Path) -> TrainingRun:
    return train(config=home / "tiny.yaml", seed=SEED)


@pytest.fixture(scope="module")
def again(home: Path, first: TrainingRun) -> TrainingRun:
    return train(snapshot=first.snapshot, config=home / "tiny.yaml", seed=SEED)


@pytest.fixture(scope="module")
def client(home: Path, first: TrainingRun) -> MlflowClient:
    return tracking.connect(Settings())


@pytest.fixture(scope="module")
def artifacts(client: MlflowClient, first: TrainingRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(client.download_artifacts(first.run_id, "", str(tmp_path_factory.mktemp("artifacts"))))


def _metric(ranker: str, metric: str) -> str:
    return tracking.metric_name(STABLE_SPLIT, ranker, metric)


def test_the_run_records_config_data_code_and_metrics(client: MlflowClient, first: TrainingRun, home: Path):
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    params, tags, metrics = run.data.params, run.data.tags, run.data.metrics
    assert params["model.hidden"] == "16" and params["training.max_epochs"] == "2" and params["seed"] == str(SEED)
    assert params["snapshot"] == tags["snapshot"] == first.snapshot == Store().current()
    assert tags["data_fingerprint"] == load_corpus(Store().current_dir()).fingerprint
    assert len(tags["git_commit"]) >= 7
    for name in ("train_loss", "val_tau", "refit_loss"):
        history = client.get_metric_history(first.run_id, name)
        assert [m.step for m in history] == [1, 2] and all(math.isfinite(m.value) for m in history)
    for ranker in ("modellens", "task-mean", "dataset-knn"):
        assert 0.0 < metrics[_metric(ranker, "ndcg@10")] <= 1.0
        assert 0.0 <= metrics[_metric(ranker, "regret@1")] < 1.0
        assert metrics[_metric(ranker, "groups")] > 5
    assert all(_same(metrics[name], value) for name, value in first.metrics.items())
    assert metrics["best_epoch"] in (1, 2)


def test_the_run_holds_reports_and_figures(artifacts: Path, first: TrainingRun):
    quality = json.loads((artifacts / "quality.json").read_text())[STABLE_SPLIT]
    assert set(quality["rankers"]) == {"modellens", "task-mean", "dataset-knn"}
    assert "| modellens |" in (artifacts / "quality.md").read_text()
    per_task = pd.read_csv(artifacts / "per_task.csv")
    assert set(per_task["ranker"]) == {"modellens", "task-mean", "dataset-knn"}
    assert per_task.groupby("ranker")["groups"].sum().eq(quality["rankers"]["modellens"]["metrics"]["groups"]).all()
    assert "| task | groups |" in (artifacts / "per_task.md").read_text()
    for figure in ("learning_curves.png", "atlas.png"):
        data = (artifacts / figure).read_bytes()
        assert data.startswith(PNG) and len(data) > 20_000
    split = Split.load(artifacts / "split.json")
    assert split == stable_new_dataset(load_corpus(Store().current_dir()), Settings().holdout_fraction)


def test_the_registered_challenger_serves_rankings_and_never_saw_held_out_families(
    client: MlflowClient, first: TrainingRun, again: TrainingRun, artifacts: Path
):
    assert aliases(client, Settings().registered_model)[CHALLENGER] == again.version == first.version + 1
    model = mlflow.pyfunc.load_model(f"models:/{Settings().registered_model}@{CHALLENGER}")
    frame = pd.DataFrame(
        {
            "id": ["asr", "pool"],
            "dataset": ["NewASR", "NewMath"],
            "description": ["Accented English conversational speech", "Grade-school math word problems"],
            "task": ["Automatic Speech Recognition", "Mathematical reasoning"],
            "metric": ["WER", "Accuracy"],
            "higher_is_better": [False, True],
            "candidates": [["openai/whisper-large-v3", "openai/whisper-tiny", "someone/unseen-asr-1b"], None],
        }
    )
    ranked = model.predict(frame)
    assert list(ranked.columns) == ["id", "rank", "model", "score"]
    asr, pool = ranked[ranked["id"] == "asr"], ranked[ranked["id"] == "pool"]
    assert set(asr["model"]) == set(frame["candidates"][0]) and list(asr["rank"]) == [1, 2, 3]
    assert len(pool) == DEFAULT_K and pool["score"].is_monotonic_decreasing
    assert ranked["score"].map(math.isfinite).all()
    top = model.predict(frame.iloc[:1].assign(k=[2]))
    assert list(top["model"]) == list(asr["model"][:2])
    held_out = set(Split.load(artifacts / "split.json").test.items)
    trained_on = model.unwrap_python_model().recommender.bundle.groups["dataset"].map(benchmark_family)
    assert held_out and not held_out & set(trained_on)


def test_the_registered_model_pins_its_requirements(client: MlflowClient, first: TrainingRun):
    name = Settings().registered_model
    pins = Path(mlflow.pyfunc.get_model_dependencies(f"models:/{name}/{first.version}")).read_text().split()
    assert "torch==2.13.0" in pins and any(p.startswith("mlflow==") for p in pins)
    locked = set((PROJECT_ROOT / "requirements.lock").read_text().lower().split())
    assert {p.lower() for p in pins} <= locked  # the serving environment is the one CI installs
    assert client.get_model_version(name, str(first.version)).tags["snapshot"] == first.snapshot


def test_the_same_snapshot_and_seed_give_the_same_metrics(first: TrainingRun, again: TrainingRun):
    assert again.snapshot == first.snapshot and again.run_id != first.run_id
    assert again.metrics.keys() == first.metrics.keys()
    assert all(_same(again.metrics[name], value) for name, value in first.metrics.items())


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))
