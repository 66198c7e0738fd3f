"""`modellens serve`, `stop` and `ask`, added to the same command line as the library's and the platform's commands.

This module is the `modellens` console entry point: it imports `flows.cli` (which adds the platform commands) and adds
the serving commands, so dependencies still point one way (serve -> flows -> lens).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.table import Table

from flows import cli as flows_cli
from lens.cli import app, console
from lens.settings import Settings

READY_SECONDS = 300
"""How long `serve --detach` waits for the first answer: Ray, Serve, and loading the champion on 2 busy cores."""


def _pid_file(settings: Settings) -> Path:
    return settings.run_dir / "serve.pid"


def _running(settings: Settings) -> int | None:
    """The pid of the background service this home started, if it is still alive."""
    path = _pid_file(settings)
    if not path.is_file():
        return None
    pid = int(path.read_text())
    if not _alive(pid):
        path.unlink()
        return None
    return pid


def _healthy(settings: Settings) -> dict | None:
    with contextlib.suppress(httpx.HTTPError):
        response = httpx.get(f"{settings.serve_url}/healthz", timeout=5)
        if response.status_code == 200:
            return response.json()
    return None


def _detach(settings: Settings) -> None:
    """Start `modellens serve` in its own session, logging to $MODELLENS_HOME/run, and wait until it answers."""
    pid = _running(settings)
    if pid is not None:
        console.print(f"already serving on {settings.serve_url} (pid {pid}); `modellens stop` stops it")
        return
    log = Settings.ensure(settings.run_dir) / "serve.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "serve.cli", "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: `stop` ends Ray's processes with it
            env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
        )
    _pid_file(settings).write_text(str(process.pid))
    deadline = time.monotonic() + READY_SECONDS
    while (health := _healthy(settings)) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
            console.print(f"[red]the service did not start[/] (log: {log}):\n{tail}")
            _stop(settings)  # after the log's tail: it exits itself if the port stays taken
            raise typer.Exit(1)
        time.sleep(1)
    console.print(
        f"ModelLens API on {settings.serve_url} serving version {health['model_version']} (pid {process.pid}; "
        f"web page {settings.serve_url}/, docs {settings.serve_url}/docs, log {log}); `modellens stop` stops it"
    )


def _stop(settings: Settings) -> bool:
    """End the background service: SIGTERM to it (Serve and Ray shut down), then SIGKILL to its process group, and
    wait until the port is free, so that a service started right after can bind it."""
    pid = _running(settings)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # the service alone: it shuts Serve and Ray down while they are still there
    _until(lambda: not _alive(pid), seconds=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # whatever of Ray's processes outlived the graceful shutdown
    _pid_file(settings).unlink(missing_ok=True)
    if not _until(lambda: not _listening(settings), seconds=30):  # HAProxy may close its socket a moment later
        console.print(f"[red]the service stopped, but something still listens on {settings.serve_url}[/]")
        raise typer.Exit(1)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _listening(settings: Settings) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((settings.host, settings.serve_port)) == 0


def _until(done: Callable[[], bool], seconds: float) -> bool:
    """Wait until `done()` (True) or `seconds` have passed (False)."""
    deadline = time.monotonic() + seconds
    while not (finished := done()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return finished


@app.command("serve")
def serve_command(
    detach: Annotated[bool, typer.Option(help="Run in the background; `modellens stop` stops it.")] = False,
) -> None:
    """Serve recommendations from @champion on settings.host:serve_port (127.0.0.1:8000) until Ctrl-C.

    Starts a private Ray instance with Serve behind HAProxy; the web page is at `/`, the API's OpenAPI page at `/docs`.
    Moving the alias (`modellens promote`, `rollback`, the MLflow UI) switches the served version within
    serve_poll_seconds. For config-file deploys use `serve run deploy/serve.yaml`.
    """
    settings = Settings()
    if detach:
        _detach(settings)
        return
    from serve import local

    def interrupt(signum, frame):
        raise KeyboardInterrupt  # `modellens stop` and service managers send SIGTERM: shut Ray down cleanly too

    url = local.start(settings)
    signal.signal(signal.SIGTERM, interrupt)  # after Ray's start, which installs a handler of its own
    console.print(f"ModelLens API on {url} (web page: {url}/, docs: {url}/docs); Ctrl-C stops it")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()  # Serve runs in Ray's processes; this one only has to stay alive
    finally:
        local.stop()


@app.command("stop")
def stop_command() -> None:
    """Stop the service `modellens serve --detach` started."""
    settings = Settings()
    stopped = _stop(settings)
    console.print(f"stopped the service on {settings.serve_url}" if stopped else "no background service is running")


@app.command("ask")
def ask_command(
    description: Annotated[str, typer.Argument(help="What the dataset is, in words.")],
    task: Annotated[str | None, typer.Option(help="Task type, e.g. 'Automatic Speech Recognition'.")] = None,
    metric: Annotated[str | None, typer.Option(help="Metric, e.g. 'WER'.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=100, help="How many models.")] = 10,
) -> None:
    """Ask the running service (`POST /recommend`) for the top-k models and print them with their evidence."""
    settings = Settings()
    body = {"description": description, "task": task, "metric": metric, "k": k}
    try:
        response = httpx.post(f"{settings.serve_url}/recommend", json=body, timeout=60)
    except httpx.ConnectError as exc:
        console.print(f"[red]no service on {settings.serve_url}:[/] start it with `modellens serve`")
        raise typer.Exit(1) from exc
    if response.status_code != 200:
        console.print(f"[red]{response.status_code}:[/] {response.text}")
        raise typer.Exit(1)
    answer = response.json()
    table = Table(title=f"POST /recommend: {description!r} (model version {answer['model_version']})")
    for column in ("rank", "model", "score", "params", "license", "nearest evidence"):
        # Names are folded, never cut short: a recommendation is only useful with the whole model id.
        table.add_column(column, justify="right" if column in ("rank", "score", "params") else "left", overflow="fold")
    for pick in answer["recommendations"]:
        evidence = pick["evidence"][0] if pick["evidence"] else None
        seen = f"{evidence['dataset']} {evidence['metric']} {evidence['value']:.4g}" if evidence else "cold start"
        params = "?" if pick["params"] is None else f"{pick['params'] / 1e9:.2f}B"
        table.add_row(str(pick["rank"]), pick["model"], f"{pick['score']:.3f}", params, pick["license"] or "?", seen)
    console.print(table)


def run() -> None:
    """Console entry point: every `modellens` command, serving included."""
    flows_cli.run()


if __name__ == "__main__":
    run()
