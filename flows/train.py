"""The `train` flow: retrain ModelLens on a snapshot, log one MLflow run, register the model as `@challenger`.

The model trains (`lens.training.train_selected`: epochs selected on held-out families, then a refit) on the
training side of the snapshot's stable split and is scored, with the baselines fitted on the same side, on the
held-out families. Those never change side between snapshots, so the promotion gate can later score this model and
one trained on another snapshot on the same groups without either having trained on them.
"""

from __future__ import annotations

import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows import plots, pyfunc, registry, report, tracking
from flows.evaluation import BundleRanker
from flows.snapshot import evaluate_ranker, hold_out, load_snapshot
from lens.bundle import load_bundle, save_bundle
from lens.corpus import Corpus
from lens.embeddings import Embedder
from lens.evaluate import Evaluation
from lens.rankers import Context, make_ranker
from lens.recommender import Recommender
from lens.settings import Settings
from lens.splits import Split
from lens.store import Store
from lens.training import LensConfig, TrainedModel, train_selected

MODELLENS = "modellens"
"""Name of the registered model's row in the quality table and its metrics (`{split}.modellens.ndcg_at_10`)."""


@dataclass(frozen=True)
class TrainingRun:
    """What one `train` flow run produced."""

    run_id: str
    version: int
    """The registered model version, now `@challenger`."""
    snapshot: str
    fingerprint: str
    metrics: dict[str, float]
    """The final metrics as logged: `{split}.{ranker}.{metric}`."""


@task(cache_policy=NO_CACHE)
def embed(corpus: Corpus, embedder: Embedder) -> int:
    """Embed every description and model text training reads, with a progress bar: only texts new to the cache cost
    anything, but on an empty cache that is minutes. Returns how many texts are cached."""
    embedder.encode(list(corpus.groups["text"]) + list(corpus.models["text"]), progress=True)
    return embedder.cached


@task(cache_policy=NO_CACHE)
def fit(corpus: Corpus, embedder: Embedder, config: LensConfig, seed: int) -> tuple[TrainedModel, TrainedModel]:
    """`(selection run, final model)` trained on `corpus`."""
    return train_selected(corpus, embedder, config, seed)


@task(cache_policy=NO_CACHE)
def write_bundle(trained: TrainedModel, corpus: Corpus, embedder: Embedder, config: LensConfig, path: Path) -> Path:
    return save_bundle(path, trained, corpus, embedder, config)


@task(cache_policy=NO_CACHE)
def load_ranker(bundle: Path, embedder: Embedder) -> BundleRanker:
    return BundleRanker(Recommender(load_bundle(bundle), embedder), MODELLENS)


@task(cache_policy=NO_CACHE)
def write_reports(
    directory: Path, evaluations: list[Evaluation], split: Split, corpus: Corpus, command: str, seconds: float
) -> Path:
    """quality.md/.json, per_task.csv/.md and split.json in `directory`."""
    Settings.ensure(directory)
    report.write_quality(directory, evaluations, split, corpus, command, seconds)
    report.write_per_task(directory, evaluations)
    split.save(directory / "split.json")
    return directory


@task(cache_policy=NO_CACHE)
def draw_figures(directory: Path, selection: TrainedModel, final: TrainedModel, bundle: Path) -> Path:
    """learning_curves.png and atlas.png in `directory`."""
    Settings.ensure(directory)
    plots.learning_curves(selection.history, final.history, directory / "learning_curves.png")
    plots.atlas(load_bundle(bundle), directory / "atlas.png")
    return directory


@task(cache_policy=NO_CACHE)
def start_run(client: MlflowClient, name: str, tags: dict[str, str], params: dict[str, str]) -> str:
    run_id = tracking.start_run(client, tracking.experiment_id(client, Settings()), name, tags)
    tracking.log_params(client, run_id, params)
    return run_id


@task(cache_policy=NO_CACHE)
def log_results(
    client: MlflowClient,
    run_id: str,
    selection: TrainedModel,
    final: TrainedModel,
    metrics: dict[str, float],
    artifacts: Path,
) -> None:
    """Per-epoch curves, the selected epoch, final metrics, and the reports and figures in `artifacts`."""
    curves = tracking.epoch_metrics(selection.history, final.history)
    tracking.log_metrics(client, run_id, [*curves, *tracking.at_step({**metrics, "best_epoch": selection.best_epoch})])
    tracking.log_artifacts(client, run_id, artifacts)


@task(cache_policy=NO_CACHE)
def register(client: MlflowClient, run_id: str, bundle: Path, tags: dict[str, str]) -> int:
    """Log the bundle as the run's pyfunc model, register it as a new version and make that `@challenger`."""
    name = Settings().registered_model
    with mlflow.start_run(run_id=run_id):
        info = pyfunc.log_model(bundle, name)
    version = int(info.registered_model_version)
    registry.tag_version(client, name, version, tags)
    registry.set_challenger(client, name, version)
    return version


def _run_name() -> str:
    snapshot = flow_run.parameters.get("snapshot") or Store(Settings().store_dir).current()
    return f"train {snapshot}"


@flow(name="train", flow_run_name=_run_name)
def train(snapshot: str | None = None, config: Path | None = None, seed: int | None = None) -> TrainingRun:
    """Train, evaluate, log and register ModelLens on a snapshot of the record store (default: the current one).

    Args:
        snapshot: the snapshot id (`modellens data status` lists them).
        config: a ModelLens YAML config (default: the values of `configs/modellens.yaml`).
        seed: training seed (default: `settings.seed`); the same snapshot and seed give the same metrics.
    """
    started = time.perf_counter()
    settings = Settings()
    seed = settings.seed if seed is None else seed
    lens_config = LensConfig.from_yaml(config) if config else LensConfig()
    data = load_snapshot(snapshot)
    split, parts = hold_out(data.corpus, settings.holdout_fraction)
    client = tracking.connect(settings)
    about = {"snapshot": data.id, "data_fingerprint": data.fingerprint, **tracking.code_version()}
    params = {
        **tracking.config_params(lens_config),
        "snapshot": data.id,
        "seed": str(seed),
        "split": split.name,
        "holdout_fraction": str(settings.holdout_fraction),
        "baselines": ",".join(settings.baselines),
        "encoder": settings.encoder,
    }
    run_id = start_run(client, f"train {data.id}", about, params)
    try:
        embedder = Embedder(settings.encoder, settings.cache_dir)
        embed(data.corpus, embedder)
        selection, final = fit(parts.train, embedder, lens_config, seed)
        with tempfile.TemporaryDirectory(prefix="modellens-train-") as work:
            bundle = write_bundle(final, parts.train, embedder, lens_config, Path(work) / "bundle")
            rankers = [load_ranker(bundle, embedder)]
            rankers += [make_ranker(name, Context(embedder, seed)) for name in settings.baselines]
            evaluations = [evaluate_ranker(ranker, parts, split.name) for ranker in rankers]
            artifacts = Path(work) / "artifacts"
            command = _command(data.id, seed, config)
            write_reports(artifacts, evaluations, split, data.corpus, command, time.perf_counter() - started)
            draw_figures(artifacts, selection, final, bundle)
            metrics = tracking.final_metrics(evaluations)
            log_results(client, run_id, selection, final, metrics, artifacts)
            version = register(
                client, run_id, bundle, {k: about[k] for k in ("snapshot", "data_fingerprint", "git_commit")}
            )
    except BaseException:
        tracking.end_run(client, run_id, failed=True)
        raise
    tracking.end_run(client, run_id)
    return TrainingRun(run_id, version, data.id, data.fingerprint, metrics)


def _command(snapshot: str, seed: int, config: Path | None) -> str:
    """The command line that reruns this training (recorded in the quality report)."""
    return f"modellens retrain --snapshot {snapshot} --seed {seed}" + (
        f" --config {shlex.quote(str(config))}" if config else ""
    )
