"""The `refresh` flow: the nightly job that keeps the recommender fresh, wiring the other flows together.

    ingest every configured source -> validate (the gate inside `lens.ingest`) -> train (only when the data changed)
    -> evaluate and register @challenger (the `train` flow) -> promote (the `promote` flow's gate)
    -> make serving pick up the new champion -> publish the "refresh report" artifact

Each step leaves the previous good state alone when it fails: an ingest that fails validation publishes no snapshot, a
training that fails registers nothing, the gate moves `@champion` only for a better model, and serving keeps its
version until the alias moves. Training is skipped when a registered version was already trained on exactly the
current records (the corpus fingerprint), so a second run in a row, a drop that was all quarantined, or metadata-only
changes retrain nothing; a refresh after a failed training retrains. The report says what happened and why, also on
failure, and then the flow run fails.

    modellens refresh            # one run now (ephemeral Prefect, sqlite MLflow, the settings' sources)
    modellens schedule           # serve the `nightly-refresh` deployment of deploy/prefect.yaml
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx
import pandas as pd
from mlflow.tracking import MlflowClient
from prefect import flow, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows import registry, tracking
from flows.errors import RefreshError
from flows.gate import PromotionDecision
from flows.promote import promote
from flows.snapshot import load_snapshot
from flows.train import TrainingRun, train
from lens.errors import IngestError
from lens.ingest import IngestReport, ingest
from lens.settings import Settings
from lens.sources import make_source
from lens.sources.local import LocalSource
from lens.store import Store

INGEST, TRAIN, PROMOTE, SERVING = "ingest + validate", "train + evaluate + register", "promote", "update serving"
"""The steps of a refresh, in order, as the report names them."""
REPORT_KEY = "refresh-report"
RUN_LINK_KEY = "refresh-mlflow-run"
NETWORK_RETRIES = {"retries": 3, "retry_delay_seconds": [2, 5, 15]}


@dataclass(frozen=True)
class Step:
    """One step of a refresh as the report shows it."""

    name: str
    outcome: Literal["done", "skipped", "failed"]
    seconds: float
    detail: str


@dataclass(frozen=True)
class Intake:
    """What one ingest brought, by leaderboard source: new or changed records, and rows quarantined."""

    report: IngestReport
    records_by_source: dict[str, int]
    quarantined_by_source: dict[str, int]

    @property
    def new_records(self) -> int:
        counts = self.report.counts.get("records")
        return 0 if counts is None else counts.added + counts.updated


@dataclass
class RefreshReport:
    """Everything a refresh did; `markdown()` is the Prefect artifact and what `modellens refresh` prints."""

    started: datetime
    steps: list[Step] = field(default_factory=list)
    intake: Intake | None = None
    snapshot: str | None = None
    training: TrainingRun | None = None
    trained_before: int | None = None
    """The version already trained on the current records, when training was skipped for that reason."""
    decision: PromotionDecision | None = None
    serving: str | None = None
    run_url: str | None = None

    @property
    def failed(self) -> Step | None:
        return next((s for s in self.steps if s.outcome == "failed"), None)

    def headline(self) -> str:
        if self.failed:
            return f"FAILED at {self.failed.name}: {self.failed.detail}. {self._left_as_it_was()}"
        if self.decision is not None:
            verb = "promoted to @champion" if self.decision.promote else "trained, not promoted"
            return f"version {self.decision.challenger} {verb}: {self.decision.reason}"
        if self.trained_before is not None:
            return f"no new records since version {self.trained_before} was trained: nothing retrained"
        return "nothing to do"

    def _left_as_it_was(self) -> str:
        """What a failure left in place: everything before the step that failed is done, nothing after it."""
        if self.failed.name == INGEST:
            return "The previous snapshot, the champion and serving are unchanged."
        if self.failed.name == SERVING:
            return f"Version {self.decision.challenger} is @champion; the service did not confirm the switch."
        return f"Snapshot {self.snapshot} is current; the champion and serving are unchanged."

    def markdown(self) -> str:
        lines = [f"# Refresh {self.started:%Y-%m-%d %H:%M} UTC", "", f"**{self.headline()}**", ""]
        lines += ["## Steps", "", "| step | outcome | seconds | detail |", "|---|---|---:|---|"]
        lines += [f"| {s.name} | {s.outcome} | {s.seconds:.1f} | {_cell(s.detail)} |" for s in self.steps]
        if self.intake is not None:
            lines += ["", *_intake_markdown(self.intake)]
        if self.decision is not None:
            lines += ["", *_decision_markdown(self.decision)]
        if self.run_url:
            lines += ["", f"MLflow run: {self.run_url}"]
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _intake_markdown(intake: Intake) -> list[str]:
    report = intake.report
    lines = [f"## Ingest: snapshot {report.snapshot or '(none)'} ({report.outcome}, previous {report.previous})", ""]
    sources = sorted(set(intake.records_by_source) | set(intake.quarantined_by_source))
    if sources:
        lines += ["| source | new or changed records | quarantined rows |", "|---|---:|---:|"]
        lines += [
            f"| {s} | {intake.records_by_source.get(s, 0):,} | {intake.quarantined_by_source.get(s, 0):,} |"
            for s in sources
        ]
    else:
        lines.append("No new records and nothing quarantined.")
    failed = report.failed_files
    lines += [f"- unreadable: {_cell(f.error or '')}" for f in failed]
    if report.validation:
        lines.append(f"- validation: {report.validation.with_suffix('.md')}")
    return lines


def _decision_markdown(decision: PromotionDecision) -> list[str]:
    champion = "none" if decision.champion is None else f"version {decision.champion}"
    lines = [f"## Challenger version {decision.challenger} vs champion {champion} on {decision.snapshot}", ""]
    if decision.quality:
        lines += ["| metric | challenger | champion |", "|---|---:|---:|"]
        lines += [
            f"| {metric} | {mine:.4f} | {'' if theirs is None else f'{theirs:.4f}'} |"
            for metric, mine, theirs in decision.quality
        ]
    verdict = "promoted" if decision.promote else "not promoted"
    lines += ["", f"Decision: **{verdict}**: {decision.reason}"]
    failed = [c for c in decision.checks if not c.passed]
    lines += [f"- guardrail {c.name}: worse by {c.regression:.4f} > {c.bound}" for c in failed]
    return lines


@dataclass
class _Note:
    """What a running step will be reported as (a step that ends without setting it is "done")."""

    outcome: Literal["done", "skipped"] = "done"
    detail: str = ""

    def skip(self, why: str) -> None:
        self.outcome, self.detail = "skipped", why


@contextmanager
def _step(report: RefreshReport, name: str) -> Iterator[_Note]:
    """Time one step and record its outcome in `report`; a step that raises is recorded as failed, and re-raises."""
    note, started = _Note(), time.perf_counter()
    try:
        yield note
    except Exception as exc:
        report.steps.append(Step(name, "failed", time.perf_counter() - started, _describe(exc)))
        raise
    report.steps.append(Step(name, note.outcome, time.perf_counter() - started, note.detail))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _retry_unless_rejected(task_, task_run, state) -> bool:
    """Retry network and other transient failures, never a rejected ingest: the same data fails the gate again."""
    try:
        state.result()
    except IngestError:
        return False
    except Exception:
        return True
    return False


@task(cache_policy=NO_CACHE, retry_condition_fn=_retry_unless_rejected, **NETWORK_RETRIES)
def ingest_sources(sources: list[str], drops: list[Path]) -> Intake:
    """Ingest and validate every source (and local drop folders): a new snapshot, or none when nothing changed.

    Raises:
        BatchCheckError: the validation gate stopped the ingest; the previous snapshot stays current.
    """
    settings = Settings()
    readers = [make_source(name, settings) for name in sources]
    if drops:
        readers.append(LocalSource(tuple(drops)))
    store = Store(settings.store_dir)
    report = ingest(readers, store, settings)
    if report.outcome != "published":
        return Intake(report, {}, {})
    return Intake(report, *_by_source(store, report.snapshot))


def _by_source(store: Store, snapshot: str) -> tuple[dict[str, int], dict[str, int]]:
    """Records this snapshot added or changed, and rows it quarantined, per leaderboard source."""
    records = store.read("records", snapshot, columns=["source", "ingested_in"])
    new = records.loc[records["ingested_in"] == snapshot, "source"].value_counts()
    quarantine = store.quarantine(snapshot)
    fresh = quarantine[quarantine["quarantined_in"] == snapshot]
    sources = [
        json.loads(data).get("source") or origin for data, origin in zip(fresh["data"], fresh["origin"], strict=True)
    ]
    quarantined = pd.Series(sources, dtype="object").value_counts()
    return {str(k): int(v) for k, v in new.items()}, {str(k): int(v) for k, v in quarantined.items()}


@task(cache_policy=NO_CACHE)
def version_trained_on(client: MlflowClient, name: str, fingerprint: str) -> int | None:
    """The newest registered version trained on records with this fingerprint, if any."""
    versions = client.search_model_versions(f"name = '{name}'")
    matching = [int(v.version) for v in versions if v.tags.get("data_fingerprint") == fingerprint]
    return max(matching, default=None)


@task(cache_policy=NO_CACHE)
def pending_challenger(client: MlflowClient, name: str) -> int | None:
    """`@challenger` when the gate has not judged it yet (a refresh that failed at promotion, say)."""
    named = registry.aliases(client, name)
    version = named.get(registry.CHALLENGER)
    if version is None or version == named.get(registry.CHAMPION):
        return None
    judged = "promotion.decision" in client.get_model_version(name, str(version)).tags
    return None if judged else version


@task(cache_policy=NO_CACHE, **NETWORK_RETRIES)
def update_serving(champion: int) -> str:
    """Make a running service serve `champion` now (reload with the token, else its alias watcher) and wait for it.

    Raises:
        RefreshError: the service is up but did not switch in time.
    """
    settings = Settings()
    url = settings.serve_url
    try:
        served = httpx.get(f"{url}/version", timeout=5).json()
    except httpx.ConnectError:
        return f"no service on {url}: it loads @champion (version {champion}) when it starts"
    if served["alias"] != settings.serve_alias:
        return f"the service on {url} follows @{served['alias']}, not @{settings.serve_alias}: left alone"
    if settings.serve_reload_token is not None:
        token = settings.serve_reload_token.get_secret_value()
        httpx.post(f"{url}/admin/reload", headers={"Authorization": f"Bearer {token}"}, timeout=120).raise_for_status()
    deadline = time.monotonic() + 60 + 5 * settings.serve_poll_seconds
    while served["model_version"] != str(champion):
        if time.monotonic() > deadline:
            raise RefreshError(f"the service on {url} still serves version {served['model_version']}, not {champion}")
        time.sleep(0.5)
        served = httpx.get(f"{url}/version", timeout=5).json()
    return f"{url} serves version {champion}"


@task(cache_policy=NO_CACHE)
def publish(report: RefreshReport) -> Path:
    """The Markdown "refresh report" artifact (and file), and a link artifact to the MLflow run when there was one."""
    markdown = report.markdown()
    create_markdown_artifact(key=REPORT_KEY, markdown=markdown, description=report.headline())
    if report.run_url:
        create_link_artifact(key=RUN_LINK_KEY, link=report.run_url, link_text="MLflow run of this refresh")
    path = Settings.ensure(Settings().reports_dir) / f"refresh-{report.started:%Y%m%dT%H%M%S}.md"
    path.write_text(markdown)
    return path


def _run_url(settings: Settings, client: MlflowClient, run_id: str) -> str:
    experiment = client.get_run(run_id).info.experiment_id
    return f"{settings.mlflow_ui_url}/#/experiments/{experiment}/runs/{run_id}"


def _run_name() -> str:
    return f"refresh {datetime.now(UTC):%Y-%m-%d}"


@flow(name="refresh", flow_run_name=_run_name)
def refresh(
    force: bool = False, drops: list[Path] | None = None, sources: list[str] | None = None, config: Path | None = None
) -> RefreshReport:
    """Ingest, validate, retrain when the data changed, evaluate, register, promote through the gate, update serving.

    Args:
        force: retrain even when a version was already trained on the current records.
        drops: local drop folders or files to ingest too (the shared or public layout).
        sources: registered source names to ingest (default: `settings.sources`; `[]` for none).
        config: a ModelLens YAML config for training (default: `configs/modellens.yaml` values).

    Raises:
        RefreshError: a step failed; the report artifact says which and why, and the previous state is intact.
    """
    settings = Settings()
    report = RefreshReport(started=datetime.now(UTC))
    client = tracking.connect(settings)
    name = settings.registered_model
    try:
        with _step(report, INGEST) as note:
            intake = report.intake = ingest_sources(list(settings.sources if sources is None else sources), drops or [])
            quarantined = sum(c.quarantined for c in intake.report.counts.values())
            note.detail = (
                f"{intake.report.outcome}: {len(intake.report.files)} new file(s), {intake.new_records:,} new or "
                f"changed records, {quarantined:,} rows quarantined"
            )
        report.snapshot = Store(settings.store_dir).current()
        with _step(report, TRAIN) as note:
            fingerprint = load_snapshot(report.snapshot).fingerprint
            report.trained_before = None if force else version_trained_on(client, name, fingerprint)
            if report.trained_before is not None:
                note.skip(f"version {report.trained_before} was trained on these records already")
            else:
                report.training = train(snapshot=report.snapshot, config=config)
                report.run_url = _run_url(settings, client, report.training.run_id)
                note.detail = f"version {report.training.version} registered as @challenger"
        with _step(report, PROMOTE) as note:
            if report.training is None and pending_challenger(client, name) is None:
                note.skip("no new challenger")
            else:
                report.decision = promote(snapshot=report.snapshot)
                note.detail = "promoted" if report.decision.promote else "refused by the gate"
        with _step(report, SERVING) as note:
            champion = registry.aliases(client, name).get(registry.CHAMPION)
            if report.decision is None or not report.decision.promote or champion is None:
                note.skip("the champion did not change")
            else:
                report.serving = note.detail = update_serving(champion)
    except Exception as exc:
        publish(report)
        raise RefreshError(report.headline()) from exc
    publish(report)
    return report
