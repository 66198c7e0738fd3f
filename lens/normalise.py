"""Normalisation of raw leaderboard values into comparable, within-group standardised scores.

A ranking group is one leaderboard column: `(source, task, dataset, metric)`. Including the source means values on
different scales or from different leaderboards (HELM's MMLU and the Open LLM Leaderboard's MMLU) are never pooled;
including the metric keeps `ndcg@10` and `recall@100` apart. Within a group, lower-is-better metrics are flipped,
duplicate (model, group) values are averaged, and values are z-scored with the population standard deviation.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

GROUP_COLUMNS = ("source", "task", "dataset", "metric")

# Spec 1.5: error-type metrics, used only where a source does not say which direction is better.
_LOWER_IS_BETTER = re.compile(
    r"(^|[_\s\-(])(wer|cer|ter|per|loss|perplexity|ppl|mae|mse|rmse|fid|kid|eer|error|err|latency|time|bpb|bpc|nll)"
    r"(@|[_\s\-)]|$)",
    re.IGNORECASE,
)


def lower_is_better(metric: str) -> bool:
    """Whether a metric name reads as an error or cost (`WER`, `Test perplexity`, `Bit per Character (BPC)`)."""
    return _LOWER_IS_BETTER.search(metric.strip()) is not None


@dataclass(frozen=True, slots=True)
class DuplicateReport:
    """What aggregating duplicate (model, group) rows did, so the rule is auditable."""

    rows_in: int
    rows_out: int
    duplicated_pairs: int
    max_spread: float  # largest max-min of direction-corrected values averaged into one pair

    def describe(self) -> str:
        return (
            f"averaged {self.rows_in - self.rows_out} duplicate rows into {self.duplicated_pairs} (model, group) pairs "
            f"(rule: mean of direction-corrected values; largest spread {self.max_spread:.4g})"
        )


def aggregate_duplicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, DuplicateReport]:
    """Average rows that share `(group_id, model_id)`; `value` must already be direction-corrected."""
    grouped = frame.groupby(["group_id", "model_id"], sort=True, observed=True)["value"]
    stats = grouped.agg(["mean", "min", "max", "size"]).reset_index()
    duplicated = stats["size"] > 1
    report = DuplicateReport(
        rows_in=len(frame),
        rows_out=len(stats),
        duplicated_pairs=int(duplicated.sum()),
        max_spread=float((stats["max"] - stats["min"])[duplicated].max()) if duplicated.any() else 0.0,
    )
    if report.duplicated_pairs:
        log.info(report.describe())
    out = stats.rename(columns={"mean": "value", "size": "n_obs"})[["group_id", "model_id", "value", "n_obs"]]
    return out, report


def standardise(records: pd.DataFrame) -> pd.DataFrame:
    """Add `z`, the within-group z-score of `value` (population std); constant groups get z = 0."""
    groups = records["group_id"]
    mean = records["value"].groupby(groups, sort=False).transform("mean")
    centred = (records["value"] - mean).to_numpy()
    std = np.sqrt(pd.Series(centred**2, index=records.index).groupby(groups, sort=False).transform("mean").to_numpy())
    z = np.divide(centred, std, out=np.zeros_like(centred), where=std > 1e-12)
    return records.assign(z=z)


def group_stats(records: pd.DataFrame, n_groups: int) -> pd.DataFrame:
    """Per group: `n_models`, and `trainable` = at least 2 models with distinct values (a ranking to learn from)."""
    agg = records.groupby("group_id")["value"].agg(["size", "min", "max"])
    stats = pd.DataFrame(index=pd.RangeIndex(n_groups, name="group_id"))
    stats["n_models"] = agg["size"].reindex(stats.index, fill_value=0).astype(int)
    stats["trainable"] = (stats["n_models"] >= 2) & (agg["max"] > agg["min"]).reindex(stats.index, fill_value=False)
    return stats
