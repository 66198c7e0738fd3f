"""Platform commands of `modellens`: refresh, schedule, retrain, promote, rollback, and the MLflow UI.

They are added to the library's command line (`lens.cli.app`) here because they need Prefect and MLflow, which
`lens` never imports. `run` prepares the environment and runs the command line; the `modellens` console entry
point (`serve.cli.run`) calls it after adding `modellens serve`: users keep one command for everything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

import lens.cli
from flows import environment
from lens.cli import SeedOption, app, console
from lens.settings import Settings

SnapshotOption = Annotated[
    str | None, typer.Option("--snapshot", help="Record-store snapshot id (default: the current snapshot).")
]


@app.command("refresh")
def refresh_command(
    force: Annotated[bool, typer.Option(help="Retrain even when a version was trained on these records.")] = False,
    drop: Annotated[
        list[Path] | None, typer.Option(help="A local drop folder or file to ingest too (repeatable).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (default: configs/modellens.yaml values).")] = None,
) -> None:
    """Run the nightly refresh once now: ingest, validate, retrain if the data changed, promote, update serving.

    Prints the refresh report (also a Prefect artifact, `refresh-report`, and a file under $MODELLENS_HOME/reports).
    Exits 1 when a step failed; the previous snapshot, champion and serving are then left as they were.
    """
    from rich.markdown import Markdown

    from flows.errors import RefreshError
    from flows.refresh import refresh

    try:
        report = refresh(force=force, drops=drop, config=config)
    except RefreshError as exc:
        console.print(f"[red]refresh failed:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(Markdown(report.markdown()))


@app.command("schedule")
def schedule_command() -> None:
    """Serve the `nightly-refresh` deployment of deploy/prefect.yaml (02:00 UTC) from this process until Ctrl-C.

    No worker needed: `flow.serve` polls for scheduled runs and runs them here. With a Prefect server and a process
    work pool, `prefect deploy --prefect-file deploy/prefect.yaml` does the same on workers (deploy/README.md).
    """
    from prefect import serve

    from flows.schedule import NightlyRefresh

    nightly = NightlyRefresh.load()
    console.print(f"serving {nightly.name}: cron {nightly.cron!r} in {nightly.timezone} (Ctrl-C stops it)")
    serve(nightly.to_deployment())


@app.command("retrain")
def retrain_command(
    snapshot: SnapshotOption = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (default: configs/modellens.yaml values).")] = None,
    seed: SeedOption = None,
) -> None:
    """Train ModelLens on a snapshot, log the MLflow run and register the model as @challenger (the `train` flow)."""
    from flows.tracking import metric_name
    from flows.train import MODELLENS, train
    from lens.splits import STABLE_SPLIT

    settings = Settings()
    result = train(snapshot=snapshot, config=config, seed=seed)
    metric = result.metrics.get(metric_name(STABLE_SPLIT, MODELLENS, settings.promotion_metric), float("nan"))
    console.print(
        f"run {result.run_id} on snapshot {result.snapshot}: registered {settings.registered_model} version "
        f"{result.version} as @challenger ({settings.promotion_metric} on held-out families: {metric:.4f})"
    )


@app.command("promote")
def promote_command(
    version: Annotated[
        int | None,
        typer.Option(
            "--version", help="Make this version the champion by hand, without the gate (like moving the UI alias)."
        ),
    ] = None,
    snapshot: SnapshotOption = None,
) -> None:
    """Promote @challenger to @champion if it beats it on today's held-out families (the `promote` flow).

    With --version N, version N becomes the champion without a comparison. Either way the replaced champion becomes
    @previous, which `modellens rollback` restores.
    """
    settings = Settings()
    if version is None:
        from flows.promote import promote

        decision = promote(snapshot=snapshot)
        verdict = "[green]promoted[/]" if decision.promote else "[yellow]not promoted[/]"
        console.print(f"version {decision.challenger} {verdict}: {decision.reason}")
        return
    from flows import registry, tracking

    client = tracking.connect(settings)
    tags = {
        "promotion.decision": "manual",
        "promotion.reason": "promoted by hand: `modellens promote --version`",
        "promotion.by": "cli",
        "promotion.at": registry.now(),
    }
    move = registry.promote(client, settings.registered_model, version, tags)
    previous = "none" if move.previous is None else f"version {move.previous}"
    console.print(f"@champion: version {move.champion}; @previous: {previous}")


@app.command("rollback")
def rollback_command() -> None:
    """Move @champion back to @previous (the version it replaced); a second rollback undoes the first."""
    from flows import registry, tracking

    settings = Settings()
    move = registry.rollback(tracking.connect(settings), settings.registered_model)
    console.print(f"@champion: version {move.champion} (rolled back from version {move.previous})")


def mlflow_ui(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a lean MLflow UI for `settings`' store (STACK_NOTES: one worker, no job
    runner; about 4 s to start and 0.5 GB, against 15 processes and 2.6 GB by default)."""
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        settings.host,
        "--port",
        str(settings.mlflow_port),
        "--backend-store-uri",
        settings.mlflow_uri,
        "--default-artifact-root",
        settings.mlflow_artifacts.as_uri(),
        "--no-serve-artifacts",  # runs record file:// artifact locations; the server reads them directly
        "--workers",
        "1",
    ]
    env = {**os.environ, **environment.environment(settings), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return command, env


@app.command("ui")
def ui_command() -> None:
    """Start the MLflow UI on settings.host:mlflow_port (127.0.0.1:5000 by default) until Ctrl-C.

    Promote or roll back there by moving the `champion` alias of the registered model; serving follows the alias.
    """
    settings = Settings()
    Settings.ensure(settings.mlflow_artifacts)
    command, env = mlflow_ui(settings)
    console.print(f"MLflow UI on {settings.mlflow_ui_url} (Ctrl-C stops it)")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the server too: it stops, and so do we
        subprocess.run(command, env=env, check=False)


def run() -> None:
    """Console entry point: the orchestration environment first (Prefect reads it at import), then the CLI."""
    environment.apply(Settings())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # every call to Prefect's API at INFO: internal chatter
    lens.cli.run()


if __name__ == "__main__":
    run()
