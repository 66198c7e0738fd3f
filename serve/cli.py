"""`modellens serve`, added to the same command line as the library's and the platform's commands.

This module is the `modellens` console entry point: it imports `flows.cli` (which adds the platform commands) and adds
the serving command, so dependencies still point one way (serve -> flows -> lens).
"""

from __future__ import annotations

import contextlib
import threading

from flows import cli as flows_cli
from lens.cli import app, console
from lens.settings import Settings


@app.command("serve")
def serve_command() -> None:
    """Serve recommendations from @champion on settings.host:serve_port (127.0.0.1:8000) until Ctrl-C.

    Starts a private Ray instance with Serve's HTTP proxy; the API and its OpenAPI page are at `/docs`. Moving the
    alias (`modellens promote`, `rollback`, the MLflow UI) switches the served version within serve_poll_seconds.
    For config-file deploys use `serve run deploy/serve.yaml`.
    """
    from serve import local

    settings = Settings()
    url = local.start(settings)
    console.print(f"ModelLens API on {url} (docs: {url}/docs); Ctrl-C stops it")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()  # Serve runs in Ray's processes; this one only has to stay alive
    finally:
        local.stop()


def run() -> None:
    """Console entry point: every `modellens` command, serving included."""
    flows_cli.run()
