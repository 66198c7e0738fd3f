"""Ingest: take new leaderboard drops into the record store, gated by the expectation suites.

One ingest: fetch (sources skip revisions already taken) -> type and validate every row (failing rows go to the
quarantine with their reason; the good rows go on) -> merge the good rows into the current snapshot by the
replacement rule -> batch-level checks against the previous snapshot -> publish a new snapshot atomically. A batch-
level failure, a table-level failure or a crash anywhere leaves the previous snapshot current.

Replacement rule. A record's key is (source, task, dataset, metric, model): the corpus's ranking group plus the
model. The task belongs in it because one leaderboard can list one dataset and metric under two tasks as two
different columns (in ../shared/corpus, nlp-progress's Penn Treebank "F1 score" under Chunking and under
Constituency Parsing); without it, a result in one would silently replace a result in the other. The price: a
leaderboard that renames a task starts new groups rather than replacing the old ones (both stay visible, nothing is
lost). For one key the value with the latest `fetched_at` is current (ties: the later ingest, then the later drop
of the same ingest); every value it replaces moves to `history` with the id of the snapshot that replaced it. A
value identical to the current one (same value and direction) changes nothing, so re-ingesting the same data adds
nothing, even from a new file. Dataset and model metadata merge field by field: a later non-empty field wins and an
empty one never erases a known fact (sources often know only a few fields); the replaced row version moves to
`datasets_history` / `models_history`. Rows a file repeats identically are merged (counted as duplicates); a file
giving different values for one key has all of them quarantined, since nothing says which is right.

Accounting, per table and ingest: rows in = added + updated + unchanged + duplicates + superseded + quarantined
(`superseded`: arrived already older than the current value, straight to history).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from rich.progress import track

from lens.errors import BatchCheckError, IngestError
from lens.settings import Settings
from lens.sources import TABLES, Drop, Source
from lens.store import HISTORY, Ingested, IngestLog, Store, empty, new_id
from lens.validation import (
    Outcome,
    TableValidation,
    ValidationReport,
    Validator,
    batch_profile,
    prepare,
    storage_types,
)

log = logging.getLogger(__name__)

KEYS: dict[str, tuple[str, ...]] = {
    "records": ("source", "task", "dataset", "metric", "model"),
    "datasets": ("source", "task", "dataset"),
    "models": ("model",),
}
"""What identifies a row of each table; see the module docstring for why the task is in the record key."""
FIELDS = {table: tuple(c for c in columns if c not in KEYS[table]) for table, columns in TABLES.items()}


@dataclass(frozen=True)
class TableCounts:
    """Where every incoming row of one table went; the constructor refuses counts that do not add up."""

    rows_in: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    superseded: int = 0
    quarantined: int = 0
    resolved: int = 0
    """Earlier quarantine entries whose key now has a valid row (not part of this ingest's rows)."""

    def __post_init__(self) -> None:
        accounted = self.added + self.updated + self.unchanged + self.duplicates + self.superseded + self.quarantined
        if accounted != self.rows_in:
            raise ValueError(f"row accounting broken: {self.rows_in} rows in, {accounted} accounted for ({self})")

    @property
    def changes_store(self) -> bool:
        return bool(self.added or self.updated or self.superseded or self.quarantined or self.resolved)


@dataclass(frozen=True)
class FileResult:
    """One drop as the user sees it: where it came from, how many rows, or why it could not be read."""

    source: str
    origin: str
    revision: str
    rows: int
    error: str | None = None

    @classmethod
    def of(cls, drop: Drop) -> FileResult:
        return cls(drop.source, drop.origin, drop.revision, drop.rows, drop.error)


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did: its outcome, the snapshot current afterwards, per-table counts and per-file results."""

    id: str
    outcome: Literal["published", "unchanged"]
    snapshot: str | None
    previous: str | None
    counts: dict[str, TableCounts]
    files: tuple[FileResult, ...]
    validation: Path | None
    seconds: float

    @property
    def failed_files(self) -> list[FileResult]:
        return [f for f in self.files if f.error is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "outcome": self.outcome,
            "snapshot": self.snapshot,
            "previous": self.previous,
            "counts": {table: asdict(c) for table, c in self.counts.items()},
            "files": [asdict(f) for f in self.files],
            "validation": str(self.validation) if self.validation else None,
            "seconds": round(self.seconds, 2),
        }


def ingest(
    sources: Sequence[Source],
    store: Store | None = None,
    settings: Settings | None = None,
    *,
    strict: bool = False,
    accept_batch_failures: bool = False,
    progress: bool = False,
) -> IngestReport:
    """Take every new drop of `sources` into the store as one new snapshot (or none, when nothing changed).

    Args:
        sources: where to read; each skips the revisions the store already took from it.
        store: the record store (default: `Settings().store_dir`).
        settings: where the expectation suites are (default: `Settings()`).
        strict: an unreadable file stops the whole ingest (default: it is reported, the other files go on).
        accept_batch_failures: publish even when the batch suite fails (after a person reviewed why).
        progress: show a progress bar while reading.

    Returns:
        The report; unreadable files are in `failed_files` (and logged in the catalog).

    Raises:
        BatchCheckError: batch- or table-level expectations failed; the previous snapshot stays current.
        IngestError: `strict` and a file could not be read.
        StoreError: another ingest holds the store.
    """
    settings = settings or Settings()
    store = store or Store(settings.store_dir)
    started, started_at, ingest_id = time.perf_counter(), _now(), new_id()
    with store.writing():
        previous = store.current()
        drops = [d for s in sources for d in _fetch(s, store, progress)]
        files = tuple(FileResult.of(d) for d in drops)
        failed = [f for f in files if f.error]
        for f in failed:
            log.error("unreadable: %s", f.error)
        readable = [d for d in drops if d.error is None]
        revisions = [Ingested(d.source, d.revision, d.origin, d.rows) for d in readable]
        if failed and strict:
            store.record(IngestLog(ingest_id, started_at, "rejected", previous, {"files": [asdict(f) for f in files]}))
            raise IngestError(f"{len(failed)} of {len(files)} file(s) unreadable (--strict), first: {failed[0].error}")
        if not readable:
            report = IngestReport(ingest_id, "unchanged", previous, previous, _no_counts(), files, None, 0.0)
            store.record(IngestLog(ingest_id, started_at, "unchanged", previous, report.to_dict()))
            return _finished(report, started)
        plan = _Plan.build(ingest_id, previous, readable, store, Validator(settings.expectations), progress)
        validation = plan.report(files).write(store.validations, f"{ingest_id}-ingest")
        blocking = plan.table_failures + ([] if accept_batch_failures else plan.batch_failures)
        if blocking:
            summary = "; ".join(f"{o.reason} (observed {o.observed})" for o in blocking)
            store.record(IngestLog(ingest_id, started_at, "rejected", previous, {"validation": str(validation)}))
            raise BatchCheckError(
                f"ingest stopped, snapshot {previous or '(none)'} stays current: {summary}", validation
            )
        if not any(c.changes_store for c in plan.counts.values()):
            report = IngestReport(ingest_id, "unchanged", previous, previous, plan.counts, files, validation, 0.0)
            store.record(IngestLog(ingest_id, started_at, "unchanged", previous, report.to_dict()), revisions)
            return _finished(report, started)
        report = IngestReport(ingest_id, "published", ingest_id, previous, plan.counts, files, validation, 0.0)
        report = _finished(report, started)
        staging = store.stage(ingest_id, plan.tables, plan.manifest(report, store))
        store.publish(staging, IngestLog(ingest_id, started_at, "published", ingest_id, report.to_dict()), revisions)
        log.info("published snapshot %s in %.1f s", ingest_id, time.perf_counter() - started)
        return report


def _fetch(source: Source, store: Store, progress: bool) -> list[Drop]:
    seen = store.seen(source.name)
    return list(track(source.fetch(seen), description=f"reading {source.name}", disable=not progress))


def _finished(report: IngestReport, started: float) -> IngestReport:
    return IngestReport(**{**report.__dict__, "seconds": time.perf_counter() - started})


def _no_counts() -> dict[str, TableCounts]:
    return {table: TableCounts() for table in TABLES}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def validate_snapshot(
    store: Store | None = None, snapshot: str | None = None, settings: Settings | None = None
) -> tuple[ValidationReport, Path]:
    """Re-run every suite on a stored snapshot (default: current), and the batch suite against its parent.

    Stored rows passed when they arrived; a row failing now means the contract changed since. Writes the JSON
    result and summary under `validations/` and returns the report and the JSON path.

    Raises:
        StoreError: no such snapshot, or none yet.
    """
    settings = settings or Settings()
    store = store or Store(settings.store_dir)
    snapshot = store.snapshot_dir(snapshot).name
    validator = Validator(settings.expectations)
    checked = {}
    for table in TABLES:
        stored = store.read(table, snapshot)
        frame = prepare(table, stored, validator.kinds).assign(origin=stored["origin"])
        checked[table] = validator.validate(table, frame)
    parent = store.parent(snapshot)
    columns = ["source", "metric", "value"]
    records = store.read("records", snapshot, columns=[*columns, "ingested_in"])
    previous = store.read("records", parent, columns=columns) if parent else empty("records")[columns]
    profile = batch_profile(previous, records, records["ingested_in"] == snapshot)
    report = ValidationReport(
        "snapshot", snapshot, parent, checked, validator.check_batch(profile), profile.iloc[0].to_dict()
    )
    return report, report.write(store.validations, f"{new_id()}-validate-{snapshot}")


def export_quarantine(directory: Path, store: Store | None = None, snapshot: str | None = None) -> list[Path]:
    """Write the open quarantine as a drop folder in the shared layout, to fix and `modellens ingest` again.

    Rows come out exactly as received, plus a `quarantine_reason` column (ignored when re-ingested). A fixed row
    that passes is admitted, and its quarantine entry is marked resolved.
    """
    store = store or Store()
    entries = store.quarantine(snapshot)
    names = {"records": Path("records") / f"quarantine-{store.snapshot_dir(snapshot).name}.csv",
             "datasets": Path("datasets.csv"), "models": Path("models.csv")}  # fmt: skip
    written = []
    for table, group in entries.groupby("table"):
        rows = pd.DataFrame([json.loads(d) for d in group["data"]]).reindex(columns=list(TABLES[table]))
        path = directory / names[table]
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.assign(quarantine_reason=group["reason"].to_numpy()).to_csv(path, index=False)
        written.append(path)
    return written


@dataclass(frozen=True)
class _TableIntake:
    """One table of an ingest: validated, merged, and accounted for."""

    checked: TableValidation
    counts: dict[str, int]
    current: pd.DataFrame | None
    """The table's new contents, None when unchanged."""
    replaced: pd.DataFrame
    quarantined: pd.DataFrame
    valid_keys: pd.Series


def _take_in(table: str, drops: list[Drop], stored: pd.DataFrame, validator: Validator, snapshot: str) -> _TableIntake:
    raw, provenance = _gather(table, drops)
    frame = pd.concat([prepare(table, raw, validator.kinds), provenance], axis=1)
    # Identical rows repeated by one file are merged first, so that the uniqueness check flags only conflicts.
    repeated = frame.duplicated([*TABLES[table], "origin"])
    if table == "records":
        repeated &= frame["value"].notna() & frame["higher_is_better"].notna()
    frame = frame[~repeated]
    columns = [*TABLES[table], "metric_kind"] if table == "records" else list(TABLES[table])
    checked = validator.validate(table, frame[[*columns, "origin"]]) if len(frame) else TableValidation.empty(table)
    failed = checked.failed.to_numpy()
    good = storage_types(table, frame[~failed].drop(columns="row")).assign(ingested_in=snapshot)
    merge = _merge_records if table == "records" else _merge_metadata
    current, replaced, outcome = merge(table, stored, good, snapshot)
    counts = {
        **outcome,
        "rows_in": len(raw),
        "duplicates": int(repeated.sum()) + outcome["duplicates"],
        "quarantined": int(failed.sum()),
    }
    return _TableIntake(
        checked,
        counts,
        current if outcome["added"] or outcome["updated"] else None,
        replaced,
        _quarantine_entries(table, frame[failed], raw, checked, snapshot),
        _key_strings(table, good),
    )


@dataclass(frozen=True)
class _Plan:
    """The snapshot an ingest would publish: new tables (None = unchanged), counts, validation, manifest counts."""

    snapshot: str
    previous: str | None
    tables: dict[str, pd.DataFrame | None]
    counts: dict[str, TableCounts]
    checked: dict[str, TableValidation]
    batch: TableValidation
    profile: dict[str, Any]
    summary: dict[str, Any]

    @classmethod
    def build(
        cls, snapshot: str, previous: str | None, drops: list[Drop], store: Store, validator: Validator, progress: bool
    ) -> _Plan:
        stored = {table: store.read(table) for table in TABLES}
        steps = track(TABLES, description="validating + merging", disable=not progress)
        intakes = {table: _take_in(table, drops, stored[table], validator, snapshot) for table in steps}
        tables: dict[str, pd.DataFrame | None] = {t: i.current for t, i in intakes.items()}
        for table, intake in intakes.items():
            history = HISTORY[table]
            tables[history] = pd.concat([store.read(history), intake.replaced]) if len(intake.replaced) else None
        quarantine, resolved, fresh = _merge_quarantine(
            store.read("quarantine"),
            [i.quarantined for i in intakes.values()],
            {t: i.valid_keys for t, i in intakes.items()},
            snapshot,
        )
        tables["quarantine"] = quarantine if fresh or any(resolved.values()) else None
        counts = {t: TableCounts(**i.counts, resolved=resolved[t]) for t, i in intakes.items()}
        records = tables["records"] if tables["records"] is not None else stored["records"]
        profile = batch_profile(stored["records"], records, records["ingested_in"] == snapshot)
        return cls(
            snapshot,
            previous,
            tables,
            counts,
            {t: i.checked for t, i in intakes.items()},
            validator.check_batch(profile),
            profile.iloc[0].to_dict(),
            _summary(records, tables, quarantine, store),
        )

    @property
    def table_failures(self) -> list[Outcome]:
        """Schema or type failures of a table: never overridable, the data cannot be stored as it is."""
        return [o for t in self.checked.values() for o in t.table_failures]

    @property
    def batch_failures(self) -> list[Outcome]:
        return [o for o in self.batch.outcomes if not o.success]

    def report(self, files: tuple[FileResult, ...]) -> ValidationReport:
        return ValidationReport(
            "ingest", self.snapshot, self.previous, self.checked, self.batch, self.profile, [asdict(f) for f in files]
        )

    def manifest(self, report: IngestReport, store: Store) -> dict[str, Any]:
        return {
            "parent": self.previous,
            "created_at": _now(),
            **self.summary,
            "ingest": report.to_dict(),
            "validation": str(report.validation.relative_to(store.root)) if report.validation else None,
        }


def _gather(table: str, drops: list[Drop]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One table's rows from every drop, as read, and their provenance (same index): origin, revision,
    fetched_at, `order` (the drop's position: a tie-breaker) and `row` (1-based within its drop)."""
    parts = [(order, drop, getattr(drop, table)) for order, drop in enumerate(drops)]
    parts = [(order, drop, frame) for order, drop, frame in parts if len(frame)]
    sizes = [len(frame) for _, _, frame in parts]
    which = np.repeat(np.arange(len(parts)), sizes)

    def per_drop(values: list, dtype: str) -> pd.Series:  # via a categorical: one value per drop, not per row
        codes, uniques = pd.factorize(pd.Series(values, dtype=dtype))
        return pd.Series(pd.Categorical.from_codes(codes[which], uniques)).astype(dtype)

    columns = list(TABLES[table])
    raw = (
        pd.concat([frame[columns] for _, _, frame in parts], ignore_index=True)
        if parts
        else pd.DataFrame({c: pd.Series(dtype="str") for c in columns})
    )
    stamps = per_drop([int(drop.fetched_at.timestamp() * 1_000_000) for _, drop, _ in parts], "int64")
    provenance = pd.DataFrame(
        {
            "origin": per_drop([drop.origin for _, drop, _ in parts], "str"),
            "revision": per_drop([drop.revision for _, drop, _ in parts], "str"),
            "fetched_at": pd.to_datetime(stamps, unit="us", utc=True),
            "order": per_drop([order for order, _, _ in parts], "int64"),
            "row": np.concatenate([np.arange(1, n + 1) for n in sizes]) if parts else np.array([], dtype="int64"),
        }
    )
    return raw, provenance


def _key_strings(table: str, frame: pd.DataFrame) -> pd.Series:
    """`a|b|c` of a table's key columns (missing parts empty): how quarantine entries find their fix."""
    key = list(KEYS[table])
    joined = frame[key[0]].fillna("").astype("str")
    for column in key[1:]:
        joined = joined + "|" + frame[column].fillna("").astype("str")
    return joined


def _quarantine_entries(
    table: str, bad: pd.DataFrame, raw: pd.DataFrame, checked: TableValidation, snapshot: str
) -> pd.DataFrame:
    """Failing rows as quarantine entries: the row exactly as received (JSON), where from, and the reason."""
    text = raw.loc[bad.index, list(TABLES[table])].to_json(orient="records", lines=True, default_handler=str)
    data = text.rstrip("\n").split("\n") if len(bad) else []  # ASCII JSON: no raw line breaks inside a record
    return pd.DataFrame(
        {
            "table": table,
            "key": _key_strings(table, bad).to_numpy(),
            "reason": checked.reasons[bad.index].to_numpy(),
            "expectation": checked.expectations[bad.index].to_numpy(),
            "data": data,
            "origin": bad["origin"].to_numpy(),
            "revision": bad["revision"].to_numpy(),
            "fetched_at": bad["fetched_at"].to_numpy(),
            "row": bad["row"].to_numpy(),
            "quarantined_in": snapshot,
            "resolved_in": None,
        },
        index=pd.RangeIndex(len(bad)),
    )


def _merge_quarantine(
    stored: pd.DataFrame, new: list[pd.DataFrame], valid_keys: dict[str, pd.Series], snapshot: str
) -> tuple[pd.DataFrame, dict[str, int], int]:
    """Stored entries (those whose key now has a valid row marked resolved) plus the new entries not already open.

    Returns the quarantine table, resolved entries per table, and how many entries are new.
    """
    stored = stored.copy()
    resolved = {}
    for table, keys in valid_keys.items():
        waiting = (stored["table"] == table) & stored["resolved_in"].isna()
        # The few waiting keys are looked up among the many valid ones, never the reverse (slow for millions).
        arrived = set(keys[keys.isin(stored.loc[waiting, "key"].unique())]) if waiting.any() else set()
        fixed = waiting & stored["key"].isin(arrived)
        stored.loc[fixed, "resolved_in"] = snapshot
        resolved[table] = int(fixed.sum())
    fresh = pd.concat(new, ignore_index=True)
    still_open = stored[stored["resolved_in"].isna()]
    known = pd.MultiIndex.from_frame(still_open[["table", "data", "reason"]])
    fresh = fresh[~pd.MultiIndex.from_frame(fresh[["table", "data", "reason"]]).isin(known)]
    return pd.concat([stored, fresh], ignore_index=True), resolved, len(fresh)


def _rows_sharing_keys(previous: pd.DataFrame, incoming: pd.DataFrame, key: list[str]) -> np.ndarray:
    """Previous rows that may share a key with an incoming row (a hash match; the merge then groups exactly)."""
    if previous.empty or incoming.empty:
        return np.zeros(len(previous), dtype=bool)
    hashes = pd.util.hash_pandas_object(incoming[key], index=False)
    return pd.util.hash_pandas_object(previous[key], index=False).isin(hashes).to_numpy()


def _pool(previous: pd.DataFrame, incoming: pd.DataFrame, key: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Previous rows sharing a key with incoming ones, plus the incoming rows, oldest first, with a key id `_kid`."""
    hit = _rows_sharing_keys(previous, incoming, key)
    pool = pd.concat([previous[hit].assign(order=-1), incoming], ignore_index=True)
    pool = pool.sort_values(["fetched_at", "order"], kind="stable", ignore_index=True)
    pool["_kid"] = pool.groupby(key, sort=False, dropna=False).ngroup()
    return pool, hit


def _merge_records(
    table: str, previous: pd.DataFrame, incoming: pd.DataFrame, snapshot: str
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Whole-row replacement: per key the latest value is current, the rest go to history."""
    key, fields = list(KEYS[table]), list(FIELDS[table])
    repeated = incoming.duplicated([*key, *fields], keep="last")  # the same value from several files of one ingest
    incoming = incoming[~repeated]
    pool, hit = _pool(previous, incoming, key)
    stored = pool["order"].to_numpy() == -1
    last = ~pool.duplicated("_kid", keep="last").to_numpy()
    had = pool["_kid"].isin(pool.loc[stored, "_kid"]).to_numpy()
    reference = pool[stored].set_index("_kid")[fields].reindex(pool["_kid"]).to_numpy()
    same = (reference == pool[fields].to_numpy()).all(axis=1) & had
    won = last & ~stored
    unchanged_keys = pool.loc[won & same, "_kid"]
    keeps = stored & (last | pool["_kid"].isin(unchanged_keys).to_numpy())
    added, updated = won & ~had, won & had & ~same
    current = pd.concat([previous[~hit], pool[keeps | added | updated]], ignore_index=True)
    replaced = pool[(~stored & ~last) | (stored & ~keeps)].assign(replaced_in=snapshot)
    outcome = {
        "added": int(added.sum()),
        "updated": int(updated.sum()),
        "unchanged": int((won & same).sum()),
        "duplicates": int(repeated.sum()),
        "superseded": int((~stored & ~last).sum()),
    }
    return _drop_work_columns(current), _drop_work_columns(replaced), outcome


def _merge_metadata(
    table: str, previous: pd.DataFrame, incoming: pd.DataFrame, snapshot: str
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Field-wise merge: per key the latest non-empty value of each field; a changed row's old version to history."""
    key, fields = list(KEYS[table]), list(FIELDS[table])
    repeated = incoming.duplicated([*key, *fields], keep="last")
    incoming = incoming[~repeated]
    pool, hit = _pool(previous, incoming, key)
    stored = pool["order"].to_numpy() == -1
    merged = pool.groupby("_kid", sort=False)[[*key, *fields, "origin", "revision", "fetched_at"]].last()
    old = pool[stored].set_index("_kid")
    reference = old[fields].reindex(merged.index)
    equal = (reference == merged[fields]) | (reference.isna() & merged[fields].isna())
    had = merged.index.isin(old.index)
    same = equal.all(axis=1).to_numpy() & had
    arrivals = pool[~stored]
    last_arrival = ~arrivals.duplicated("_kid", keep="last").to_numpy()
    changed = merged[~same].assign(ingested_in=snapshot)
    current = pd.concat([previous[~hit], old[old.index.isin(merged.index[same])], changed], ignore_index=True)
    replaced = pd.concat([old[old.index.isin(merged.index[~same])], arrivals[~last_arrival]], ignore_index=True).assign(
        replaced_in=snapshot
    )
    outcome = {
        "added": int((~had).sum()),
        "updated": int((had & ~same).sum()),
        "unchanged": int(same.sum()),
        "duplicates": int(repeated.sum()),
        "superseded": int((~last_arrival).sum()),
    }
    return _drop_work_columns(current), _drop_work_columns(replaced), outcome


def _drop_work_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in ("order", "_kid", "row") if c in frame.columns])


def _summary(records: pd.DataFrame, tables: dict, quarantine: pd.DataFrame, store: Store) -> dict[str, Any]:
    """Counts a snapshot carries in its manifest, so that `data status` reads no table."""

    def rows(name: str) -> int:
        return len(tables[name]) if tables.get(name) is not None else store.rows(name)

    open_entries = quarantine[quarantine["resolved_in"].isna()]
    by_reason = open_entries.groupby(["table", "reason"]).size().sort_values(ascending=False)
    return {
        "counts": {
            "records": len(records),
            "models": int(records["model"].nunique()),
            "datasets": len(records[["source", "task", "dataset"]].drop_duplicates()),
            "model_metadata": rows("models"),
            "dataset_metadata": rows("datasets"),
            "history": rows("history"),
            "quarantined": len(open_entries),
        },
        "quarantine_by_reason": [
            {"table": table, "reason": reason, "rows": int(n)} for (table, reason), n in by_reason.items()
        ],
    }
