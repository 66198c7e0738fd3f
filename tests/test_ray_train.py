"""The Ray Train scale-out path: two Ray workers train one ModelLens data-parallel and write a bundle that ranks."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray

from deploy.ray_train import RUN_FILE, train_on_ray
from lens.bundle import load_bundle
from lens.rankers import Query
from lens.recommender import Recommender
from lens.settings import Settings

# Two real leaderboards of the slice: ~170 models, so even a cold embedding cache costs seconds, not minutes.
SOURCES = ("open_asr_leaderboard.csv.gz", "livebench-2025-11-25.csv.gz")
TINY = """
model: {id_dim: 8, token_dim: 8, size_dim: 4, family_dim: 4, group_id_dim: 8, task_dim: 4, metric_dim: 4, hidden: 16}
training: {max_epochs: 2, patience: 2, max_list: 32, progress: false}
"""
ASR = Query("NewASR", "Speech Recognition", "WER", "Accented English conversational speech", higher_is_better=False)


@pytest.fixture
def small_dir(slice_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "records").mkdir(parents=True)
    for name in SOURCES:
        (root / "records" / name).symlink_to((slice_dir / "records" / name).resolve())
    (root / "datasets.csv").symlink_to((slice_dir / "datasets.csv").resolve())
    names = set(pd.concat(pd.read_csv(p, usecols=["model"]) for p in (root / "records").iterdir())["model"])
    models = pd.read_csv(slice_dir / "models.csv.gz")
    models[models["model"].isin(names)].to_csv(root / "models.csv.gz", index=False)
    return root


@pytest.mark.slow
def test_two_ray_workers_train_one_bundle(
    small_dir: Path, tmp_path: Path, shared_home: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MODELLENS_HOME", str(shared_home))  # short: Ray's socket paths live under <home>/ray
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    try:
        out = train_on_ray(small_dir, tmp_path / "model", workers=2, config=config, seed=1)
    finally:
        ray.shutdown()

    run = json.loads((out / RUN_FILE).read_text())
    assert run["world_size"] == run["process_group_size"] == 2  # both workers joined the gloo process group
    assert run["weight_spread"] == 0.0  # gradients all-reduced: the two replicas ended bit-identical
    assert 1 <= run["best_epoch"] <= run["epochs"] <= 2 and np.isfinite(run["val_tau"])
    bundle = load_bundle(out)
    assert bundle.manifest["config"]["model"]["hidden"] == 16
    assert len(bundle.manifest["history"]) == run["final_epochs"] == run["best_epoch"]  # refit for the selected count
    recommender = Recommender.load(out, Settings().cache_dir)
    scores = recommender.rank(ASR, ["openai/whisper-large-v3", "brand/new-model-7b"])
    assert list(scores) == ["openai/whisper-large-v3", "brand/new-model-7b"]
    assert all(np.isfinite(v) for v in scores.values())
