"""The process environment the orchestration tools read: where Prefect keeps its state, and telemetry off.

Prefect reads `PREFECT_HOME` when it is imported and MLflow reads its variables when it starts, so `apply` runs in
the command-line entry point before either is imported, never at import time of this package. Values the caller has
set win: a deployment can point Prefect at a real server or another home.
"""

from __future__ import annotations

import os
from pathlib import Path

from lens.settings import Settings

TELEMETRY_OFF = {
    "DO_NOT_TRACK": "true",  # MLflow ignores "1"
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def environment(settings: Settings) -> dict[str, str]:
    """The variables the flows and the MLflow UI need, derived from `settings`."""
    return {
        **TELEMETRY_OFF,
        "PREFECT_HOME": str(settings.prefect_home),
        # The ephemeral API server's 20 s default is tight on two busy cores (STACK_NOTES).
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }


def apply(settings: Settings) -> None:
    """Set every variable of `environment` that this process has not set already, and make Prefect's home.

    Prefect creates its home without parents: in a fresh MODELLENS_HOME its ephemeral server would find no
    database directory and exit.
    """
    for name, value in environment(settings).items():
        os.environ.setdefault(name, value)
    Settings.ensure(Path(os.environ["PREFECT_HOME"]))
