"""The `nightly-refresh` deployment as `deploy/prefect.yaml` declares it: one definition for `prefect deploy` and for
`modellens schedule`, which serves it from one process (`flow.serve`) on a machine without a Prefect server or
worker. Reading the schedule from the YAML keeps the two from drifting apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from flows.refresh import refresh
from lens.settings import PROJECT_ROOT

PREFECT_FILE = PROJECT_ROOT / "deploy" / "prefect.yaml"
NIGHTLY = "nightly-refresh"


@dataclass(frozen=True)
class NightlyRefresh:
    """The deployment's name, entrypoint, schedule and default parameters."""

    name: str
    entrypoint: str
    cron: str
    timezone: str
    parameters: dict[str, Any]
    concurrency_limit: int | None

    def __post_init__(self) -> None:
        if not self.timezone:
            raise ValueError(f"deployment {self.name!r}: its schedule must name a timezone (cron alone is UTC)")

    @classmethod
    def load(cls, path: Path = PREFECT_FILE, name: str = NIGHTLY) -> NightlyRefresh:
        """The deployment `name` of a prefect.yaml.

        Raises:
            KeyError: the file declares no such deployment, or it has no cron schedule.
        """
        declared = {d["name"]: d for d in yaml.safe_load(path.read_text())["deployments"]}
        if name not in declared:
            raise KeyError(f"{path} declares no deployment {name!r} (it has: {', '.join(declared)})")
        spec = declared[name]
        crons = [s for s in spec.get("schedules", []) if "cron" in s]
        if not crons:
            raise KeyError(f"deployment {name!r} in {path} has no cron schedule")
        return cls(
            name=name,
            entrypoint=spec["entrypoint"],
            cron=crons[0]["cron"],
            timezone=crons[0].get("timezone", ""),
            parameters=spec.get("parameters", {}),
            concurrency_limit=spec.get("concurrency_limit"),
        )

    def to_deployment(self) -> RunnerDeployment:
        """The deployment of the `refresh` flow that `flow.serve` runs (and a test can apply and trigger)."""
        return refresh.to_deployment(
            name=self.name,
            schedules=[Cron(self.cron, timezone=self.timezone)],
            parameters=self.parameters,
            concurrency_limit=self.concurrency_limit,
        )
