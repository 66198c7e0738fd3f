"""Data contracts: the Great Expectations suites in `expectations/`, run on incoming and stored tables.

Row-level expectations (non-null keys, numbers that parse, plausible ranges by metric kind, a valid direction flag,
name rules, unique keys) split a table into rows that pass and rows to quarantine, each with the first expectation
it failed as its reason. Table-level expectations (schema, column types) and the batch suite, which compares an
ingest with the previous snapshot, cannot be pinned on rows: when they fail, the ingest stops and the previous
snapshot stays current.

GX runs each suite with the SUMMARY result format (COMPLETE is ~50x slower on large failing frames); the failing rows
of each failed expectation are then found with pandas, mirroring GX's own pandas implementation, and the two counts
must agree, so the suite files stay the one place the rules live.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from lens.errors import ModelLensError
from lens.sources import TABLES

SUITES = ("records", "datasets", "models")
"""Row-level suites, one per table, in `expectations/<table>.json`; `batch.json` holds the batch-level suite."""
_TEXT_COLUMNS = {
    "records": ("source", "task", "dataset", "model", "metric"),
    "datasets": ("source", "task", "dataset", "description_origin", "description"),
    "models": (
        "model",
        "architecture",
        "license",
        "release_date",
        "hf_id",
        "meta_source",
        "model_description",
        "family",
    ),
}
_MODEL_NUMBERS = ("n_parameters", "open_weights")
MIN_SHIFT_ROWS = 30
"""A source's value shift is measured only when at least this many of its incoming values have a reference."""
MIN_REFERENCE_ROWS = 20
"""Incoming values are compared with the previous values of their (source, metric) when there are this many."""


class ValidationSetupError(ModelLensError):
    """A suite file is missing or malformed, or GX and pandas disagree on which rows fail an expectation."""


@dataclass(frozen=True)
class MetricKinds:
    """Metric name patterns -> kind (fraction or percentage, error rate, Elo-like, ...), first match wins.

    The kinds are what the range expectations of `records.json` condition on; the patterns live in
    `expectations/metric_kinds.json` next to them.
    """

    patterns: tuple[tuple[str, re.Pattern[str]], ...]
    default: str

    def __post_init__(self) -> None:
        if not self.patterns or not self.default:
            raise ValueError("MetricKinds needs at least one pattern and a default kind")

    @classmethod
    def load(cls, path: Path) -> MetricKinds:
        spec = _read_json(path)
        try:
            patterns = tuple((k["kind"], re.compile(k["pattern"], re.IGNORECASE)) for k in spec["kinds"])
            return cls(patterns, spec["default"])
        except (KeyError, TypeError, re.error) as exc:
            raise ValidationSetupError(f"{path}: expected {{kinds: [{{kind, pattern}}], default}}: {exc}") from exc

    def kind(self, metric: object) -> str:
        """The kind of one metric name (missing names get the default)."""
        if isinstance(metric, str):
            for kind, pattern in self.patterns:
                if pattern.search(metric):
                    return kind
        return self.default

    def classify(self, metrics: pd.Series) -> pd.Series:
        return _per_unique(metrics, self.kind).astype("str")


def prepare(table: str, raw: pd.DataFrame, kinds: MetricKinds) -> pd.DataFrame:
    """Type a table as read (text cells) for validation: names stripped and empty -> missing, numbers parsed.

    Records: `value` and `higher_is_better` become floats (text that is not a number becomes missing, which the
    not-null expectations report), and `metric_kind` is added. Model numbers stay text, so that text where a number
    belongs is caught instead of becoming "unknown"; `storage_types` converts them once they passed.
    """
    out = pd.DataFrame(index=raw.index)
    for column in _TEXT_COLUMNS[table]:
        out[column] = _text(raw[column])
    if table == "records":
        out["value"] = pd.to_numeric(raw["value"], errors="coerce").astype("float64")
        out["higher_is_better"] = _per_unique(raw["higher_is_better"], _flag).astype("float64")
        out["metric_kind"] = kinds.classify(out["metric"])
    elif table == "models":
        for column in _MODEL_NUMBERS:
            out[column] = _text(raw[column])
    return out[[*TABLES[table], "metric_kind"]] if table == "records" else out[list(TABLES[table])]


def storage_types(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The types a table is stored with, for rows that passed validation."""
    if table == "records":
        return frame.drop(columns="metric_kind").astype({"higher_is_better": "int8"})
    if table == "models":
        return frame.assign(
            n_parameters=pd.to_numeric(frame["n_parameters"], errors="coerce").astype("float64"),
            open_weights=_per_unique(frame["open_weights"], _flag).astype("float64"),
        )
    return frame


def _text(column: pd.Series) -> pd.Series:
    text = column.astype("str").str.strip()
    return text.mask(text == "")


def _flag(value: object) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    token = str(value).strip().lower()
    if token in ("true", "false"):
        return float(token == "true")
    try:
        return float(token)
    except ValueError:
        return math.nan


def _per_unique(column: pd.Series, function) -> pd.Series:
    """`function` applied once per distinct value (columns repeat a few values over millions of rows)."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    mapped = np.array([function(u) for u in uniques] + [function(None)], dtype=object)
    return pd.Series(mapped[codes], index=column.index)


@dataclass(frozen=True)
class Outcome:
    """One expectation's result on one table."""

    expectation: str
    reason: str
    level: Literal["row", "table"]
    success: bool
    unexpected: int = 0
    observed: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class TableValidation:
    """A suite's verdict on a table: per-expectation outcomes and, per failing row, its first failed expectation."""

    table: str
    rows: int
    outcomes: tuple[Outcome, ...]
    reasons: pd.Series = field(repr=False)
    """Indexed like the validated frame: the reason a row fails, `""` where it passed."""
    expectations: pd.Series = field(repr=False)
    """Indexed like the validated frame: the expectation a row failed first, `""` where it passed."""

    def __post_init__(self) -> None:
        if len(self.reasons) != self.rows or len(self.expectations) != self.rows:
            raise ValueError("TableValidation needs one reason and one expectation per row")

    @classmethod
    def empty(cls, table: str) -> TableValidation:
        """The verdict on a table with no rows: nothing to check (and no GX run)."""
        none = pd.Series([], dtype=object)
        return cls(table, 0, (), none, none)

    @property
    def failed(self) -> pd.Series:
        """Rows to quarantine."""
        return self.reasons != ""

    @property
    def table_failures(self) -> list[Outcome]:
        """Failed table-level expectations: the table cannot be taken as it is."""
        return [o for o in self.outcomes if o.level == "table" and not o.success]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "quarantined": int(self.failed.sum()),
            "success": not self.table_failures and not self.failed.any(),
            "expectations": [o.to_dict() for o in self.outcomes],
        }


class Validator:
    """Runs the suites of one expectations directory (loaded once) with a GX ephemeral context."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.kinds = MetricKinds.load(directory / "metric_kinds.json")
        self.suites = {name: _read_json(directory / f"{name}.json") for name in (*SUITES, "batch")}

    def validate(self, table: str, frame: pd.DataFrame) -> TableValidation:
        """Validate a prepared frame (see `prepare`, plus an `origin` column) against the table's suite."""
        return self._run(table, frame, row_level=True)

    def check_batch(self, profile: pd.DataFrame) -> TableValidation:
        """Run the batch suite on a one-row `batch_profile`: every failure is a batch-level failure."""
        return self._run("batch", profile, row_level=False)

    def _run(self, name: str, frame: pd.DataFrame, row_level: bool) -> TableValidation:
        import great_expectations as gx  # ~5 s to import: only when there is something to validate

        try:
            suite = gx.ExpectationSuite(**self.suites[name])
        except Exception as exc:  # GX raises many types on a malformed suite; all mean the same to the user
            raise ValidationSetupError(f"{self.directory / name}.json is not a valid GX suite: {exc}") from exc
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format="SUMMARY")
        reasons = pd.Series("", index=frame.index, dtype=object)
        labels = pd.Series("", index=frame.index, dtype=object)
        outcomes = []
        for item in result.results:
            config = item.expectation_config
            label = _label(config.type, config.kwargs)
            reason = str(config.meta.get("reason") or label)
            error = _exception(item.exception_info)
            row = row_level and config.type in _ROW_MASKS and error is None
            unexpected = int(item.result.get("unexpected_count") or 0)
            observed = None if row else _observed(item.result)
            outcomes.append(
                Outcome(label, reason, "row" if row else "table", bool(item.success), unexpected, observed, error)
            )
            if row and not item.success:
                mask = _ROW_MASKS[config.type](frame, config.kwargs) & _condition(frame, config.kwargs)
                if int(mask.sum()) != unexpected:
                    raise ValidationSetupError(
                        f"{label}: GX counts {unexpected} failing rows, pandas {int(mask.sum())}; "
                        "the expectation type is not mirrored faithfully in lens.validation"
                    )
                first = mask & (reasons == "")
                reasons[first], labels[first] = reason, label
        return TableValidation(name, len(frame), tuple(outcomes), reasons, labels)


@functools.cache
def _batch_definition():
    """One ephemeral GX context per process: no files, no analytics, no progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    asset = context.data_sources.add_pandas("lens").add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole frame")


def _exception(info: dict | None) -> str | None:
    """GX's exception info: flat for the expectation, or keyed by metric when a metric failed to compute."""
    if not info:
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info["raised_exception"] else None
    messages = [
        str(v.get("exception_message")) for v in info.values() if isinstance(v, dict) and v.get("raised_exception")
    ]
    return "; ".join(messages) or None


def _label(kind: str, kwargs: dict) -> str:
    target = kwargs.get("column") or ",".join(kwargs.get("column_list") or []) or "table"
    condition = kwargs.get("row_condition")
    when = f" | {condition['column']['name']} {condition['operator']} {condition['parameter']!r}" if condition else ""
    return f"{kind}({target}{when})"


_COMPARISONS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "IN": lambda column, values: column.isin(values),
    "NOT_IN": lambda column, values: ~column.isin(values),
}


def _condition(frame: pd.DataFrame, kwargs: dict) -> pd.Series:
    """The rows a `row_condition` selects; the suites use GX comparison conditions only."""
    condition = kwargs.get("row_condition")
    if not condition:
        return pd.Series(True, index=frame.index)
    if condition.get("type") != "comparison" or condition.get("operator") not in _COMPARISONS:
        raise ValidationSetupError(f"row_condition {condition} is not a comparison lens.validation mirrors")
    compare = _COMPARISONS[condition["operator"]]
    return compare(frame[condition["column"]["name"]], condition["parameter"]).fillna(False).astype(bool)


def _between(frame: pd.DataFrame, kwargs: dict) -> pd.Series:
    values = frame[kwargs["column"]]
    inside = pd.Series(True, index=frame.index)
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None:
        inside &= values > low if kwargs.get("strict_min") else values >= low
    if high is not None:
        inside &= values < high if kwargs.get("strict_max") else values <= high
    return values.notna() & ~inside


def _lengths(frame: pd.DataFrame, kwargs: dict) -> pd.Series:
    values = frame[kwargs["column"]]
    lengths = values.astype("str").str.len()
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    inside = lengths.between(low if low is not None else 0, high if high is not None else np.inf)
    return values.notna() & ~inside


def _regex(frame: pd.DataFrame, kwargs: dict) -> pd.Series:
    values = frame[kwargs["column"]]
    return values.notna() & values.astype("str").str.contains(kwargs["regex"], regex=True)


def _compound_duplicates(frame: pd.DataFrame, kwargs: dict) -> pd.Series:
    keys = frame[list(kwargs["column_list"])]
    return keys.duplicated(keep=False) & ~keys.isna().all(axis=1)


_ROW_MASKS = {
    "expect_column_values_to_not_be_null": lambda f, kw: f[kw["column"]].isna(),
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_be_in_set": lambda f, kw: (
        f[kw["column"]].notna() & ~f[kw["column"]].isin(list(kw["value_set"]))
    ),
    "expect_column_value_lengths_to_be_between": _lengths,
    "expect_column_values_to_match_regex": lambda f, kw: f[kw["column"]].notna() & ~_regex(f, kw),
    "expect_column_values_to_not_match_regex": _regex,
    "expect_compound_columns_to_be_unique": _compound_duplicates,
}
"""Row masks of the expectation types used row-level, mirroring GX's pandas implementations (nulls never fail
a map expectation except `not_be_null`). Any other type is table-level: its failure stops the ingest."""


def batch_profile(previous: pd.DataFrame, current: pd.DataFrame, incoming: pd.Series) -> pd.DataFrame:
    """One row comparing the records a snapshot holds (`current`) with the previous snapshot's (`previous`).

    Args:
        previous: the previous snapshot's records (`source, metric, value`); empty for the first snapshot.
        current: the new snapshot's records.
        incoming: boolean mask over `current`: rows this ingest added or updated.

    Returns:
        `previous_records, records, row_change` (relative), `new_source_share` (share of `current` from sources
        the previous snapshot lacks), `value_shift` and `shifted_source` (the largest per-source shift: the
        Kolmogorov-Smirnov distance from uniform of the incoming values' percentiles within the previous values of
        the same source and metric, so sources that mix scales compare like with like; 0 = same distribution,
        1 = all values beyond the previous range, e.g. fractions turned into percentages).
    """
    known = set(previous["source"].unique())
    shift, shifted = _largest_shift(previous, current[incoming.to_numpy()])
    return pd.DataFrame(
        {
            "previous_records": [len(previous)],
            "records": [len(current)],
            "row_change": [len(current) / len(previous) - 1 if len(previous) else math.nan],
            "new_source_share": [float((~current["source"].isin(known)).mean()) if len(current) else 0.0],
            "value_shift": [shift],
            "shifted_source": [shifted],
        }
    )


def _largest_shift(previous: pd.DataFrame, incoming: pd.DataFrame) -> tuple[float, str]:
    reference = {key: np.sort(v.to_numpy()) for key, v in previous.groupby(["source", "metric"])["value"]}
    percentiles: dict[str, list[np.ndarray]] = {}
    for (source, metric), values in incoming.groupby(["source", "metric"])["value"]:
        ref = reference.get((source, metric))
        if ref is None or len(ref) < MIN_REFERENCE_ROWS:
            continue
        below = np.searchsorted(ref, values.to_numpy(), "left")
        upto = np.searchsorted(ref, values.to_numpy(), "right")
        percentiles.setdefault(source, []).append((below + upto) / (2 * len(ref)))
    shifts = {
        s: _ks_from_uniform(np.concatenate(p)) for s, p in percentiles.items() if sum(map(len, p)) >= MIN_SHIFT_ROWS
    }
    if not shifts:
        return 0.0, ""
    source = max(shifts, key=shifts.__getitem__)
    return shifts[source], source


def _ks_from_uniform(u: np.ndarray) -> float:
    u = np.sort(u)
    n = len(u)
    return float(max(np.max(np.arange(1, n + 1) / n - u), np.max(u - np.arange(n) / n)))


@dataclass(frozen=True)
class ValidationReport:
    """Everything one validation found, written as JSON plus a short human summary."""

    kind: Literal["ingest", "snapshot"]
    snapshot: str | None
    parent: str | None
    tables: dict[str, TableValidation]
    batch: TableValidation | None
    profile: dict[str, Any] | None
    files: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def batch_failures(self) -> list[Outcome]:
        """Failed batch-level expectations, table-level ones included: any of these stops a refresh."""
        failures = [o for t in self.tables.values() for o in t.table_failures]
        if self.batch is not None:
            failures += [o for o in self.batch.outcomes if not o.success]
        return failures

    @property
    def success(self) -> bool:
        """No batch-level failure (rows quarantined on the way are not a failure of the batch)."""
        return not self.batch_failures

    @property
    def clean(self) -> bool:
        """Not a single failure: what a stored snapshot must be (its rows all passed when they arrived)."""
        return self.success and not any(t.failed.any() for t in self.tables.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "snapshot": self.snapshot,
            "parent": self.parent,
            "created_at": self.created_at,
            "success": self.success,
            "tables": {name: t.to_dict() for name, t in self.tables.items()},
            "batch": None if self.batch is None else {"profile": self.profile, **self.batch.to_dict()},
            "files": self.files,
        }

    def summary(self) -> str:
        """A few lines for humans: verdict, quarantine by reason, batch failures, unreadable files."""
        subject = f"snapshot {self.snapshot}" if self.kind == "snapshot" else f"ingest into {self.snapshot or '-'}"
        lines = [f"# Validation of {subject}: {'passed' if self.success else 'FAILED'}", ""]
        for name, t in self.tables.items():
            lines.append(f"- {name}: {t.rows:,} rows checked, {int(t.failed.sum()):,} failing")
            counts = t.reasons[t.failed].value_counts()
            lines += [f"  - {n:,} x {reason}" for reason, n in counts.items()]
        if self.profile is not None:
            shown = ", ".join(f"{k} {_fmt(v)}" for k, v in self.profile.items())
            lines.append(f"- batch vs previous snapshot: {shown}")
        lines += [
            f"- BATCH FAILURE: {o.reason} ({o.expectation}; observed {_fmt(o.observed)})" for o in self.batch_failures
        ]
        lines += [f"- unreadable file: {f['origin']}: {f['error']}" for f in self.files if f.get("error")]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path, name: str) -> Path:
        """Write `<name>.json` and `<name>.md` under `directory`; returns the JSON path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.json"
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str) + "\n")
        path.with_suffix(".md").write_text(self.summary())
        return path


def _plain(value: Any) -> Any:
    """Observed values as JSON-friendly scalars or lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    return value


def _observed(result: dict) -> Any:
    """What a table-level check saw: its observed value, or, for a column check on a one-row table (the batch
    profile), the value it rejected; GX reports those only among the unexpected values."""
    if result.get("observed_value") is not None:
        return _plain(result["observed_value"])
    unexpected = [_plain(v) for v in result.get("partial_unexpected_list") or ()]
    return unexpected[0] if len(unexpected) == 1 else unexpected or None


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValidationSetupError(f"cannot read expectations file {path}: {exc}") from exc
