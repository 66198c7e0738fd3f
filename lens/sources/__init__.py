"""Where incoming leaderboard data comes from: one `Source` interface, the `Drop`s it delivers, and a registry.

A source turns an origin (a folder of files, a Hub repository) into drops, one per file or per revision, whose frames
use the corpus schemas (`RECORD_COLUMNS`, `DATASET_COLUMNS`, `MODEL_COLUMNS`) exactly as read: values may still be
text, names may be dirty. Typing and checking them is validation's job, so every source shares one contract and no
source can let a bad row through. Provenance (origin, revision, fetched_at) travels on the drop; the store stamps it
on every row it keeps. A source skips revisions it delivered before, which is what makes re-runs cheap and idempotent.

Sources register by name (`@register_source("local")`); `modellens ingest --source NAME` and the `sources` setting
pick them. The Hugging Face sources (`hf-corpus`, `hf-leaderboards`, `hf-models`) register from `lens.sources.hub`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import pandas as pd

from lens.corpus import DATASET_COLUMNS, MODEL_COLUMNS, RECORD_COLUMNS
from lens.errors import UnknownSourceError
from lens.settings import Settings

TABLES: dict[str, tuple[str, ...]] = {"records": RECORD_COLUMNS, "datasets": DATASET_COLUMNS, "models": MODEL_COLUMNS}
"""The three tables a drop may carry, with their columns."""


def empty_table(table: str) -> pd.DataFrame:
    """A frame with a table's columns and no rows."""
    return pd.DataFrame(columns=list(TABLES[table]), dtype=object)


@dataclass(frozen=True)
class Drop:
    """What a source delivers from one origin at one revision: up to three frames, or the reason it is unreadable.

    Args:
        source: the registered name of the source that fetched it (`local`, `hf-corpus`, ...).
        origin: the file path or URL the rows came from; quarantined rows point back to it.
        revision: content sha256 (files) or Hub commit; `(source, revision)` is never ingested twice.
        fetched_at: when it was fetched (timezone-aware, or an ISO string with an offset); normalised to UTC. The
            latest `fetched_at` wins when two drops give a value for the same key.
        records, datasets, models: frames holding (at least) the table's columns, rows in origin order.
        error: why the origin could not be read; a failed drop carries no rows and is reported, not ingested.

    Raises:
        ValueError: a field is empty, `fetched_at` is naive, a frame lacks columns, or a failed drop carries rows.

    Example:
        >>> Drop("local", "/tmp/a.csv", "ab12", "2025-01-01T00:00:00+00:00").rows
        0
    """

    source: str
    origin: str
    revision: str
    fetched_at: datetime | str
    records: pd.DataFrame = field(default_factory=lambda: empty_table("records"), repr=False)
    datasets: pd.DataFrame = field(default_factory=lambda: empty_table("datasets"), repr=False)
    models: pd.DataFrame = field(default_factory=lambda: empty_table("models"), repr=False)
    error: str | None = None

    def __post_init__(self) -> None:
        for name in ("source", "origin", "revision"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"Drop.{name} must be a non-empty string, got {getattr(self, name)!r}")
        fetched = self.fetched_at
        if isinstance(fetched, str):
            fetched = datetime.fromisoformat(fetched)
        if not isinstance(fetched, datetime) or fetched.tzinfo is None:
            raise ValueError(f"Drop.fetched_at must be timezone-aware (UTC), got {self.fetched_at!r}")
        object.__setattr__(self, "fetched_at", fetched.astimezone(UTC))
        for table, columns in TABLES.items():
            frame = getattr(self, table)
            if not isinstance(frame, pd.DataFrame):
                raise ValueError(f"Drop.{table} must be a pandas DataFrame, got {type(frame).__name__}")
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise ValueError(f"Drop.{table} lacks column(s) {missing} (origin {self.origin})")
        if self.error is not None and self.rows:
            raise ValueError("a failed drop carries no rows")

    @property
    def rows(self) -> int:
        """Rows in all three frames."""
        return sum(len(getattr(self, table)) for table in TABLES)

    @classmethod
    def failed(cls, source: str, origin: str, revision: str, error: str) -> Drop:
        """A drop whose origin could not be read: reported to the user, never marked as ingested."""
        return cls(source, origin, revision, datetime.now(UTC), error=error)


PROVENANCE = ("origin", "revision", "fetched_at")


def drops_from_frames(source: str, origin: str, fetched_at: datetime | str, **frames: pd.DataFrame) -> list[Drop]:
    """Frames whose rows carry their own provenance (`origin, revision, fetched_at` columns, as the Hub sources build
    them) as drops: one per distinct (origin, revision, fetched_at), in order of first appearance.

    Args:
        source: the source's registered name.
        origin, fetched_at: for rows (or whole frames) without these values.
        frames: `records=`, `datasets=`, `models=` frames holding at least the table's columns.

    Rows without a revision get `sha256:<hash of their content>`, so the same rows are still recognised as seen.

    Example:
        >>> rows = pd.DataFrame({c: ["x"] for c in TABLES["records"]}).assign(revision="abc")
        >>> [d.revision for d in drops_from_frames("hf-leaderboards", "https://hf.co", "2025-01-01T00:00:00+00:00",
        ...                                        records=rows)]
        ['abc']
    """
    default_time = fetched_at.isoformat() if isinstance(fetched_at, datetime) else fetched_at
    parts: dict[tuple, dict[str, pd.DataFrame]] = {}
    for table, frame in frames.items():
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; expected one of {list(TABLES)}")
        stamped = frame.assign(
            origin=frame["origin"].fillna(origin) if "origin" in frame else origin,
            revision=frame.get("revision"),
            fetched_at=frame["fetched_at"].fillna(default_time).astype(str) if "fetched_at" in frame else default_time,
        )
        for key, group in stamped.groupby(list(PROVENANCE), dropna=False, sort=False):
            parts.setdefault(key, {})[table] = group[list(TABLES[table])].reset_index(drop=True)
    drops = []
    for (where, revision, when), tables in parts.items():
        if not isinstance(revision, str) or not revision:
            content = "".join(f"{t}:{f.to_json(orient='records')}" for t, f in sorted(tables.items()))
            revision = f"sha256:{hashlib.sha256(content.encode()).hexdigest()}"
        drops.append(Drop(source, where, revision, when, **tables))
    return drops


class Source(Protocol):
    """Anything that delivers drops. `fetch` must skip every revision in `seen` (already ingested from it)."""

    name: str

    def fetch(self, seen: Collection[str]) -> Iterable[Drop]: ...


SourceFactory = Callable[[Settings], Source]
_REGISTRY: dict[str, SourceFactory] = {}


def register_source(name: str) -> Callable[[SourceFactory], SourceFactory]:
    """Decorator adding a source factory (settings -> source) to the registry under `name`."""

    def add(factory: SourceFactory) -> SourceFactory:
        _REGISTRY[name] = factory
        return factory

    return add


def available_sources() -> list[str]:
    """Registered source names, in registration order."""
    _load_builtin()
    return list(_REGISTRY)


def make_source(name: str, settings: Settings) -> Source:
    """A source by registered name; unknown names list the known ones."""
    _load_builtin()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UnknownSourceError(
            f"unknown source {name!r}; registered sources: {', '.join(available_sources())}"
        ) from None
    return factory(settings)


def _load_builtin() -> None:
    # Importing a source module registers its sources.
    from lens.sources import hub, local  # noqa: F401
