"""MLflow runs: where they are stored, and what one training run records.

A run holds what comparing, reproducing and auditing a retrain needs: the config flattened into params, the data
(snapshot id and fingerprint tags), the code (git commit tag), per-epoch curves, final metrics per split and ranker,
and the reports and figures as artifacts. Logging goes through an explicit client and run id, not MLflow's
thread-local active run, because Prefect may run each task in its own thread.
"""

from __future__ import annotations

import math
import re
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lens.evaluate import Evaluation
from lens.settings import PROJECT_ROOT, Settings
from lens.training import EpochStats, LensConfig

_BATCH = 500
"""Metrics or params per `log_batch` call (MLflow accepts at most 1000 metrics and 100 params per call)."""


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the settings' tracking and registry store (default: sqlite under `home`) and return a client."""
    Settings.ensure(settings.home)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    return MlflowClient(settings.mlflow_uri, settings.mlflow_uri)


def experiment_id(client: MlflowClient, settings: Settings) -> str:
    """The experiment of training runs, created on first use with its artifacts under `mlflow_artifacts`.

    The location must be explicit: with a database store MLflow would otherwise write artifacts to `./mlruns` of
    whatever directory the process started in. A tracking server chooses it itself (its artifact store).
    """
    name = settings.mlflow_experiment
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    server = settings.mlflow_uri.startswith(("http://", "https://"))
    location = None if server else Settings.ensure(settings.mlflow_artifacts / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it in between
        return client.get_experiment_by_name(name).experiment_id


def key(text: str) -> str:
    """`text` as an MLflow metric, param or tag key: `@` spelled `_at_` (`ndcg@10` -> `ndcg_at_10`), anything else
    MLflow rejects as `_`."""
    return re.sub(r"[^\w.\-]+", "_", text.replace("@", "_at_")).strip("_")


def metric_name(split: str, ranker: str, metric: str) -> str:
    return f"{split}.{key(ranker)}.{key(metric)}"


def config_params(config: LensConfig) -> dict[str, str]:
    """The config as flat params: `model.hidden`, `training.max_epochs`, ..."""
    return {
        f"{section}.{name}": str(value)
        for section, values in config.to_dict().items()
        for name, value in values.items()
    }


def code_version() -> dict[str, str]:
    """Tags naming the code: the git commit (and whether the tree had uncommitted changes), else the package version."""
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": f"modellens {version('modellens')} (no git checkout)"}
    return {"git_commit": commit, "git_dirty": str(dirty).lower(), "mlflow.source.git.commit": commit}


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip()


def start_run(client: MlflowClient, experiment: str, name: str, tags: Mapping[str, str]) -> str:
    return client.create_run(experiment, run_name=name, tags=dict(tags)).info.run_id


def end_run(client: MlflowClient, run_id: str, failed: bool = False) -> None:
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED if failed else RunStatus.FINISHED))


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    items = [Param(k, v) for k, v in params.items()]
    for first in range(0, len(items), 100):
        client.log_batch(run_id, params=items[first : first + 100])


def log_metrics(client: MlflowClient, run_id: str, metrics: Iterable[Metric]) -> None:
    items = list(metrics)
    for first in range(0, len(items), _BATCH):
        client.log_batch(run_id, metrics=items[first : first + _BATCH])


def epoch_metrics(selection: Sequence[EpochStats], refit: Sequence[EpochStats]) -> list[Metric]:
    """`train_loss` and `val_tau` of the selection run and `refit_loss` of the refit, with `step` = epoch."""
    now = int(time.time() * 1000)
    out = []
    for e in selection:
        out.append(Metric("train_loss", e.loss, now, e.epoch))
        if math.isfinite(e.val_tau):
            out.append(Metric("val_tau", e.val_tau, now, e.epoch))
    if refit is not selection:
        out += [Metric("refit_loss", e.loss, now, e.epoch) for e in refit]
    return out


def at_step(metrics: Mapping[str, float], step: int = 0) -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(name, float(value), now, step) for name, value in metrics.items()]


def final_metrics(evaluations: Sequence[Evaluation]) -> dict[str, float]:
    """`{split}.{ranker}.{metric}` of every evaluation (NaN kept: a metric with no group to measure it on)."""
    return {metric_name(e.split, e.ranker, m): float(v) for e in evaluations for m, v in e.metrics.items()}


def log_artifacts(client: MlflowClient, run_id: str, directory: Path) -> None:
    client.log_artifacts(run_id, str(directory))
