"""The versioned record store: immutable Parquet snapshots, a SQLite catalog, and an atomic publish.

Layout under `Settings().store_dir`:

    catalog.sqlite           snapshots, the current pointer, ingested revisions, the ingest log
    snapshots/<id>/          one immutable snapshot, what training reads (`load_corpus(<id dir>)`):
        records.parquet        the current value of every key, with provenance (origin, revision, fetched_at,
                               ingested_in)
        datasets.parquet, models.parquet            metadata, with the same provenance
        history.parquet        every record value that was replaced, with the snapshot that replaced it
        datasets_history.parquet, models_history.parquet
        quarantine.parquet     rows that failed row-level expectations, with the reason; `resolved_in` once a
                               valid row for the same key arrived
        manifest.json          counts, the ingest report, the validation result
    validations/<id>.json|md every validation's result and human summary

Why Parquet snapshots and a SQLite catalog: a snapshot is a handful of columnar files that pandas reads in about a
second even at the public corpus's 2M records (dictionary-encoded names compress ~10x), needs no server and no new
dependency, and being immutable can be read while the next one is written. The catalog is the one piece of mutable
state, so it lives in the stdlib `sqlite3` with transactions. Publishing is crash-safe: a snapshot is written (and
fsynced) into `snapshots/.staging-<id>`, renamed into place, and only then made current in one catalog transaction.
A crash before the commit leaves a staging or unlisted directory that the next writer removes; readers only ever
follow the catalog, so they see the previous snapshot or the new one, never a half-written one. Tables a snapshot
does not change are hard links to its parent's files, so a nightly snapshot costs only what changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from lens.corpus import DATASET_COLUMNS, MODEL_COLUMNS, RECORD_COLUMNS, SNAPSHOT_LAYOUT
from lens.errors import StoreError
from lens.settings import Settings

log = logging.getLogger(__name__)

PROVENANCE_COLUMNS = ("origin", "revision", "fetched_at", "ingested_in")
QUARANTINE_COLUMNS = (
    "table",
    "key",
    "reason",
    "expectation",
    "data",
    "origin",
    "revision",
    "fetched_at",
    "row",
    "quarantined_in",
    "resolved_in",
)
COLUMNS: dict[str, tuple[str, ...]] = {
    "records": (*RECORD_COLUMNS, *PROVENANCE_COLUMNS),
    "datasets": (*DATASET_COLUMNS, *PROVENANCE_COLUMNS),
    "models": (*MODEL_COLUMNS, *PROVENANCE_COLUMNS),
    "history": (*RECORD_COLUMNS, *PROVENANCE_COLUMNS, "replaced_in"),
    "datasets_history": (*DATASET_COLUMNS, *PROVENANCE_COLUMNS, "replaced_in"),
    "models_history": (*MODEL_COLUMNS, *PROVENANCE_COLUMNS, "replaced_in"),
    "quarantine": QUARANTINE_COLUMNS,
}
"""Every table of a snapshot, with its columns."""
HISTORY = {"records": "history", "datasets": "datasets_history", "models": "models_history"}
_DTYPES = {
    "value": "float64",
    "higher_is_better": "int8",
    "n_parameters": "float64",
    "open_weights": "float64",
    "row": "int64",
    "fetched_at": "datetime64[us, UTC]",
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ingests (
    id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('published', 'unchanged', 'rejected')),
    snapshot TEXT,
    report TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY,
    parent TEXT REFERENCES snapshots(id),
    created_at TEXT NOT NULL,
    records INTEGER NOT NULL,
    quarantined INTEGER NOT NULL,
    ingest TEXT NOT NULL REFERENCES ingests(id)
);
CREATE TABLE IF NOT EXISTS current (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    snapshot TEXT NOT NULL REFERENCES snapshots(id)
);
CREATE TABLE IF NOT EXISTS revisions (
    source TEXT NOT NULL,
    revision TEXT NOT NULL,
    origin TEXT NOT NULL,
    rows INTEGER NOT NULL,
    ingest TEXT NOT NULL REFERENCES ingests(id),
    PRIMARY KEY (source, revision)
);
"""


def empty(table: str) -> pd.DataFrame:
    """A typed, empty snapshot table (what the store holds before the first ingest)."""
    columns = COLUMNS[table]
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES.get(c, "str")) for c in columns})


def typed(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with exactly the table's columns and storage types, so every snapshot has one Parquet schema."""
    frame = frame.reindex(columns=list(COLUMNS[table]))
    return frame.astype({c: _DTYPES.get(c, "str") for c in frame.columns})


def new_id() -> str:
    """A sortable, unique-enough id for an ingest and the snapshot it publishes (UTC, microseconds)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


@dataclass(frozen=True)
class Ingested:
    """A revision an ingest took in: never read again from the same source."""

    source: str
    revision: str
    origin: str
    rows: int


@dataclass(frozen=True)
class IngestLog:
    """One ingest as the catalog records it."""

    id: str
    started_at: str
    outcome: str
    snapshot: str | None
    report: dict[str, Any]

    def __post_init__(self) -> None:
        if self.outcome not in ("published", "unchanged", "rejected"):
            raise ValueError(f"IngestLog.outcome must be published, unchanged or rejected, got {self.outcome!r}")


class Store:
    """A record store rooted at a directory (default: `Settings().store_dir`). Readers need no lock."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else Settings().store_dir
        self.catalog = self.root / "catalog.sqlite"
        self.snapshots = self.root / "snapshots"
        self.validations = self.root / "validations"

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- reading -------------------------------------------------------------------------------------------------

    def current(self) -> str | None:
        """The current snapshot id, or None before the first publish."""
        if not self.catalog.is_file():
            return None
        with self._connect() as db:
            row = db.execute("SELECT snapshot FROM current").fetchone()
        return row[0] if row else None

    def current_dir(self) -> Path:
        """The directory of the current snapshot.

        Raises:
            StoreError: nothing was ingested yet.
        """
        snapshot = self.current()
        if snapshot is None:
            raise StoreError(f"the record store {self.root} has no snapshot yet: run `modellens ingest` first")
        return self.snapshots / snapshot

    def snapshot_dir(self, snapshot: str | None = None) -> Path:
        """The directory of a published snapshot (default: the current one).

        Raises:
            StoreError: no such snapshot in the catalog.
        """
        if snapshot is None:
            return self.current_dir()
        if snapshot not in self.snapshot_ids():
            known = ", ".join(self.snapshot_ids()[-5:]) or "none"
            raise StoreError(f"no snapshot {snapshot!r} in {self.root} (latest: {known})")
        return self.snapshots / snapshot

    def snapshot_ids(self) -> list[str]:
        """Published snapshots, oldest first."""
        if not self.catalog.is_file():
            return []
        with self._connect() as db:
            return [r[0] for r in db.execute("SELECT id FROM snapshots ORDER BY created_at, id")]

    def parent(self, snapshot: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT parent FROM snapshots WHERE id = ?", (snapshot,)).fetchone()
        return row[0] if row else None

    def manifest(self, snapshot: str | None = None) -> dict[str, Any]:
        return json.loads((self.snapshot_dir(snapshot) / "manifest.json").read_text())

    def read(self, table: str, snapshot: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """A table of a snapshot (default: the current one; before any, an empty typed table)."""
        if snapshot is None and self.current() is None:
            return empty(table)[columns] if columns else empty(table)
        return pd.read_parquet(self.snapshot_dir(snapshot) / f"{table}.parquet", columns=columns)

    def rows(self, table: str, snapshot: str | None = None) -> int:
        """Row count of a snapshot table, from the Parquet footer (no data read)."""
        if snapshot is None and self.current() is None:
            return 0
        return pq.ParquetFile(self.snapshot_dir(snapshot) / f"{table}.parquet").metadata.num_rows

    def seen(self, source: str) -> set[str]:
        """Revisions already ingested from a source: it must not deliver them again."""
        if not self.catalog.is_file():
            return set()
        with self._connect() as db:
            return {r[0] for r in db.execute("SELECT revision FROM revisions WHERE source = ?", (source,))}

    def last_ingest(self) -> IngestLog | None:
        if not self.catalog.is_file():
            return None
        with self._connect() as db:
            row = db.execute(
                "SELECT id, started_at, outcome, snapshot, report FROM ingests ORDER BY started_at DESC, id DESC"
            ).fetchone()
        return None if row is None else IngestLog(row[0], row[1], row[2], row[3], json.loads(row[4]))

    def quarantine(self, snapshot: str | None = None, include_resolved: bool = False) -> pd.DataFrame:
        """Quarantined rows of a snapshot (default: current), open ones only unless `include_resolved`."""
        entries = self.read("quarantine", snapshot)
        return entries if include_resolved else entries[entries["resolved_in"].isna()].reset_index(drop=True)

    def status(self) -> dict[str, Any]:
        """The current snapshot's counts, quarantine by reason, and the last ingest (from manifests and catalog)."""
        snapshot = self.current()
        manifest = self.manifest() if snapshot else {"counts": {}, "quarantine_by_reason": []}
        names = ("records", "models", "datasets", "quarantined", "history", "model_metadata", "dataset_metadata")
        last = self.last_ingest()
        return {
            "store": str(self.root),
            "snapshot": snapshot,
            **{name: int(manifest["counts"].get(name, 0)) for name in names},
            "snapshots": len(self.snapshot_ids()),
            "quarantine_by_reason": manifest["quarantine_by_reason"],
            "last_ingest": None
            if last is None
            else {
                "id": last.id,
                "started_at": last.started_at,
                "outcome": last.outcome,
                "snapshot": last.snapshot,
                "validation": last.report.get("validation"),
                "unreadable_files": [f for f in last.report.get("files", []) if f.get("error")],
            },
        }

    # -- writing -------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self) -> Iterator[Store]:
        """Hold the writer lock (one ingest at a time) and clear what a crashed writer left behind.

        Raises:
            StoreError: another process is ingesting into this store.
        """
        Settings.ensure(self.snapshots)
        with (self.root / ".lock").open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(f"another ingest is writing to {self.root}; wait for it to finish") from None
            with self._connect() as db:
                db.executescript(_SCHEMA)
            self._remove_leftovers()
            yield self

    def stage(self, snapshot: str, tables: dict[str, pd.DataFrame | None], manifest: dict[str, Any]) -> Path:
        """Write a snapshot into a staging directory; `None` tables are unchanged: hard links to the parent's file.

        Call inside `writing()`. Nothing is visible to readers until `publish`.
        """
        staging = self.snapshots / f".staging-{snapshot}"
        staging.mkdir()
        parent = manifest.get("parent")
        for name in COLUMNS:
            target = staging / f"{name}.parquet"
            frame = tables.get(name)
            if frame is None and parent is not None:
                _share(self.snapshots / parent / target.name, target)
                continue
            typed(name, frame if frame is not None else empty(name)).to_parquet(target, index=False)
            _fsync(target)
        manifest_path = staging / "manifest.json"
        manifest_path.write_text(json.dumps({"layout": SNAPSHOT_LAYOUT, "id": snapshot, **manifest}, indent=1) + "\n")
        _fsync(manifest_path)
        _fsync(staging)
        return staging

    def publish(self, staging: Path, ingest: IngestLog, revisions: list[Ingested]) -> Path:
        """Make a staged snapshot current: one rename, then one catalog transaction. Call inside `writing()`."""
        manifest = json.loads((staging / "manifest.json").read_text())
        final = self.snapshots / manifest["id"]
        staging.rename(final)
        _fsync(self.snapshots)
        with self._connect() as db:
            self._log(db, ingest, revisions)
            db.execute(
                "INSERT INTO snapshots (id, parent, created_at, records, quarantined, ingest) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    manifest["id"],
                    manifest.get("parent"),
                    manifest["created_at"],
                    manifest["counts"]["records"],
                    manifest["counts"]["quarantined"],
                    ingest.id,
                ),
            )
            db.execute("INSERT OR REPLACE INTO current (singleton, snapshot) VALUES (1, ?)", (manifest["id"],))
        return final

    def record(self, ingest: IngestLog, revisions: list[Ingested] = ()) -> None:
        """Log an ingest that publishes nothing (no new input, or rejected); `revisions` count as ingested."""
        with self._connect() as db:
            self._log(db, ingest, list(revisions))

    def _log(self, db: sqlite3.Connection, ingest: IngestLog, revisions: list[Ingested]) -> None:
        db.execute(
            "INSERT INTO ingests (id, started_at, finished_at, outcome, snapshot, report) VALUES (?, ?, ?, ?, ?, ?)",
            (
                ingest.id,
                ingest.started_at,
                datetime.now(UTC).isoformat(timespec="seconds"),
                ingest.outcome,
                ingest.snapshot,
                json.dumps(ingest.report, default=str),
            ),
        )
        db.executemany(
            "INSERT OR IGNORE INTO revisions (source, revision, origin, rows, ingest) VALUES (?, ?, ?, ?, ?)",
            [(r.source, r.revision, r.origin, r.rows, ingest.id) for r in revisions],
        )

    def _remove_leftovers(self) -> None:
        """Staging directories and unlisted snapshots are what an interrupted ingest left: never current, so gone."""
        listed = set(self.snapshot_ids())
        for path in self.snapshots.iterdir():
            if path.is_dir() and path.name not in listed:
                log.warning("removing %s, left by an interrupted ingest (it was never current)", path)
                shutil.rmtree(path)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A catalog connection holding one transaction: committed on success, rolled back on any error."""
        db = sqlite3.connect(self.catalog, timeout=30)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            with db:
                yield db
        finally:
            db.close()


def _share(source: Path, target: Path) -> None:
    """A parent's unchanged table in a new snapshot: a hard link (no copy), or a copy where links are unsupported."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
        _fsync(target)


def _fsync(path: Path) -> None:
    """Flush a file or directory to disk, so a rename never publishes data the disk does not hold yet."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
