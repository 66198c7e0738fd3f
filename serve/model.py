"""The served model: one registry version of ModelLens, loaded whole before it answers anything.

A `ServedModel` is immutable: following the alias means loading a new one and swapping a reference, so a request that
started on a version finishes on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from lens.recommender import Recommender


@dataclass(frozen=True)
class ServedModel:
    """A loaded registry version and what `/version` says about it."""

    version: str
    alias: str
    snapshot: str | None
    run_id: str | None
    recommender: Recommender


def resolve(client: MlflowClient, name: str, alias: str) -> ModelVersion:
    """The version `alias` names now (read from the registry on every call: moves made anywhere are seen)."""
    return client.get_model_version_by_alias(name, alias)


def load(name: str, alias: str, version: ModelVersion) -> ServedModel:
    """Load `version` of the registered model `name` through its pyfunc flavour and keep its recommender.

    Loading by number, not by alias, pins exactly the version that was resolved even if the alias moves meanwhile.
    """
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
    return ServedModel(
        version=str(version.version),
        alias=alias,
        snapshot=version.tags.get("snapshot"),
        run_id=version.run_id,
        recommender=pyfunc.unwrap_python_model().recommender,
    )
