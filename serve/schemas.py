"""The HTTP contract: typed, self-validating requests and responses of the serving API.

Limits come from the settings read once when the module is imported (in every replica), so the OpenAPI page shows
the limits in force. Every field a client can get wrong is checked here, and a bad value is a 422 naming the field,
never an error further in.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from lens.settings import Settings

LIMITS = Settings()
UNKNOWN = "unknown"
"""Task, metric or dataset of a query that names none: a cold-start value like any other unknown name."""

MAX_PARAMS = 10**15
"""Bound of the size filters: far above any model, and small enough to compare as a float without overflow."""
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
"""A model, dataset, task, metric, license or family name: blank names are refused rather than guessed at."""


class PoolRequest(BaseModel):
    """What a user knows about the dataset they want models for; only the description is required."""

    model_config = ConfigDict(extra="forbid")

    description: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=LIMITS.serve_max_description)
    ]
    dataset: Name | None = None
    task: Name | None = None
    metric: Name | None = None
    higher_is_better: bool = True
    k: int = Field(10, ge=1, le=100, description="How many models to return.")


class Filters(BaseModel):
    """Which models may be recommended. A model whose metadata cannot show it passes a filter is left out."""

    model_config = ConfigDict(extra="forbid")

    max_params: int | None = Field(None, ge=0, le=MAX_PARAMS)
    min_params: int | None = Field(None, ge=0, le=MAX_PARAMS)
    licenses: list[Name] | None = Field(None, max_length=100)
    families: list[Name] | None = Field(None, max_length=100)
    open_weights_only: bool | None = Field(
        None, description="Not supported yet: the model metadata records no open-weights flag (true is a 422)."
    )
    exclude: list[Name] | None = Field(None, max_length=LIMITS.serve_max_candidates)

    @model_validator(mode="after")
    def _consistent(self) -> Filters:
        if self.open_weights_only:
            # Guessing from the license would be dishonest: a permissive license does not say the weights are out.
            raise ValueError(
                "open_weights_only is not supported: the model metadata has no open-weights field; "
                "filter by `licenses` instead"
            )
        if self.min_params is not None and self.max_params is not None and self.min_params > self.max_params:
            raise ValueError(f"min_params ({self.min_params}) is larger than max_params ({self.max_params})")
        return self


class RecommendRequest(PoolRequest):
    """A recommendation request: the query, optionally the only candidates to rank, and filters."""

    candidates: list[Name] | None = Field(
        None,
        min_length=1,
        max_length=LIMITS.serve_max_candidates,
        description="Rank only these models (any spelling; unknown names are cold starts). Default: every model.",
    )
    filters: Filters | None = None


class Evidence(BaseModel):
    """A known dataset near the query on which the model was observed, and its published value there."""

    dataset: str
    metric: str
    value: float
    similarity: float


class Recommendation(BaseModel):
    rank: int
    model: str
    score: float
    params: int | None
    license: str | None
    family: str | None
    url: str | None
    evidence: list[Evidence]


class RecommendResponse(BaseModel):
    request_id: str
    model_version: str
    recommendations: list[Recommendation]


class PoolResponse(BaseModel):
    request_id: str
    model_version: str
    models: list[str]


class Observation(BaseModel):
    """One published result of a model: where, on what metric, and how it ranked among that leaderboard's models."""

    source: str
    task: str
    dataset: str
    metric: str
    value: float
    rank: int
    of: int


class ModelInfo(BaseModel):
    model: str
    params: int | None
    license: str | None
    family: str | None
    url: str | None
    observations: list[Observation]


class VersionInfo(BaseModel):
    model_version: str
    alias: str
    snapshot: str | None
    run_id: str | None
    known_models: int = Field(description="Models the served version knows: the default candidates of a request.")


class ReloadResponse(BaseModel):
    model_version: str
    changed: bool


class Tasks(BaseModel):
    model_version: str
    tasks: list[str]


class Metrics(BaseModel):
    model_version: str
    metrics: list[str]


class Health(BaseModel):
    status: str
    model_version: str
