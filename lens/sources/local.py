"""Local drops: leaderboard files on disk, in the shared corpus layout or the public ModelLens layout.

Each file is hashed (sha256 of its bytes) and parsed from those same bytes, so the revision recorded is exactly what
was read; a file whose hash was ingested before is skipped unparsed. Cells are read as text: typing and range checks
are validation's job, which quarantines a bad row with its reason instead of failing its file. A file that cannot be
read as a table at all (truncated gzip, empty, wrong delimiter, missing columns, wrong Parquet types, broken JSON)
becomes a failed drop that names the file and the problem; the other files of the drop are still read.

File names decide what a file holds: `data.csv` is the public layout (with its JSON vocab files beside it),
`datasets.csv` dataset descriptions, `models.csv[.gz]` / `models.parquet` model metadata, and any other
`*.csv[.gz]`, `*.parquet` or `*.jsonl[.gz]` leaderboard records. A folder is searched at its top and in `records/`.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lens.corpus import DATASET_COLUMNS, MODEL_COLUMNS, PUBLIC_COLUMNS, PUBLIC_SOURCE, RECORD_COLUMNS, public_model_meta
from lens.errors import CorpusError, IngestError
from lens.normalise import lower_is_better
from lens.settings import Settings
from lens.sources import Drop, register_source

RECORD_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".jsonl", ".jsonl.gz")
_DATASETS_FILES = ("datasets.csv", "datasets.csv.gz")
_MODELS_FILES = ("models.csv", "models.csv.gz", "models.parquet")
_PUBLIC_FILE = "data.csv"
_PUBLIC_VOCAB = ("model_profile.json", "model2family.json")
# Everything pandas, gzip and pyarrow raise on bytes that are not the table they claim to be.
_UNREADABLE = (OSError, EOFError, ValueError, zlib.error, pa.ArrowException)
_PARQUET_KINDS = {
    "records": {"source": "text", "task": "text", "dataset": "text", "model": "text", "metric": "text",
                "value": "number", "higher_is_better": "flag"},
    "models": {"model": "text", "n_parameters": "number", "open_weights": "flag", "architecture": "text",
               "license": "text", "release_date": "text", "hf_id": "text", "meta_source": "text",
               "model_description": "text", "family": "text"},
}  # fmt: skip


def file_kind(path: Path) -> str | None:
    """What a file holds by its name: `records`, `datasets`, `models`, `public` (data.csv), or None."""
    name = path.name.lower()
    if name.startswith("."):
        return None
    if name == _PUBLIC_FILE:
        return "public"
    if name in _DATASETS_FILES:
        return "datasets"
    if name in _MODELS_FILES:
        return "models"
    return "records" if name.endswith(RECORD_SUFFIXES) else None


@dataclass(frozen=True)
class LocalSource:
    """Files and folders on disk; one drop per file (the public layout: one per `data.csv` with its vocab files).

    Example:
        >>> source = LocalSource((Path("../shared/corpus"),))
        >>> drops = list(source.fetch(seen=set()))  # doctest: +SKIP
    """

    paths: tuple[Path, ...]
    name: str = "local"

    def __post_init__(self) -> None:
        paths = tuple(Path(p) for p in self.paths)
        if not paths:
            raise ValueError("LocalSource needs at least one path")
        object.__setattr__(self, "paths", paths)

    def files(self) -> list[tuple[Path, str]]:
        """`(path, kind)` of every file to read, folders expanded, in a stable order.

        Raises:
            IngestError: a path does not exist, or a file given by name is not a leaderboard file.
        """
        found = []
        for path in self.paths:
            if path.is_dir():
                inside = [p for p in (*path.iterdir(), *_children(path / "records")) if p.is_file()]
                found += [(p, kind) for p in sorted(inside) if (kind := file_kind(p))]
            elif path.is_file():
                kind = file_kind(path)
                if kind is None:
                    raise IngestError(
                        f"not a leaderboard file: {path}; expected records (*{', *'.join(RECORD_SUFFIXES)}), "
                        "datasets.csv, models.csv[.gz]|models.parquet or a public-layout data.csv"
                    )
                found.append((path, kind))
            else:
                raise IngestError(f"no such file or directory: {path}")
        return found

    def fetch(self, seen: Collection[str]) -> Iterator[Drop]:
        """Read every file whose content hash is not in `seen` (nor delivered earlier in this fetch)."""
        delivered = set(seen)
        for path, kind in self.files():
            origin = str(path.absolute())
            try:
                parts = _contents(path, kind)
            except OSError as exc:
                yield Drop.failed(self.name, origin, "unread", f"cannot read file {path}: {exc}")
                continue
            revision = _revision(parts)
            if revision in delivered:
                continue
            delivered.add(revision)
            yield _read(self.name, origin, revision, path, kind, parts[0][1])


@register_source("local")
def local_corpus(settings: Settings) -> LocalSource:
    """The `local` source of the settings: the corpus folder (`MODELLENS_CORPUS`)."""
    return LocalSource((settings.corpus,))


def _children(directory: Path) -> list[Path]:
    return list(directory.iterdir()) if directory.is_dir() else []


def _contents(path: Path, kind: str) -> list[tuple[str, bytes]]:
    """The bytes that make up a drop: the file, and for the public layout its vocab files too."""
    parts = [(path.name, path.read_bytes())]
    if kind == "public":
        parts += [(name, (path.parent / name).read_bytes()) for name in _PUBLIC_VOCAB if (path.parent / name).is_file()]
    return parts


def _revision(parts: list[tuple[str, bytes]]) -> str:
    """sha256 of a file's bytes (what `sha256sum` prints); with vocab files, of all parts and their names."""
    if len(parts) == 1:
        return hashlib.sha256(parts[0][1]).hexdigest()
    digest = hashlib.sha256()
    for name, data in parts:
        digest.update(name.encode() + b"\0" + data)
    return digest.hexdigest()


def _read(source: str, origin: str, revision: str, path: Path, kind: str, data: bytes) -> Drop:
    fetched_at = datetime.now(UTC)
    try:
        frames = _READERS[kind](path, data)
    except CorpusError as exc:
        return Drop.failed(source, origin, revision, str(exc))
    except _UNREADABLE as exc:
        message = "the file is empty" if not data else f"cannot read it as {kind}: {exc}"
        return Drop.failed(source, origin, revision, str(CorpusError(message, path)))
    return Drop(source, origin, revision, fetched_at, **frames)


def _records(path: Path, data: bytes) -> dict[str, pd.DataFrame]:
    name = path.name.lower()
    if name.endswith(".parquet"):
        table = _read_parquet(path, data, "records")
    elif name.endswith((".jsonl", ".jsonl.gz")):
        compression = "gzip" if name.endswith(".gz") else None
        table = pd.read_json(io.BytesIO(data), lines=True, dtype=False, compression=compression)
    else:
        table = _read_csv(path, data)
    _require(table, [c for c in RECORD_COLUMNS if c != "higher_is_better"], RECORD_COLUMNS, path)
    if "higher_is_better" not in table.columns:  # as the corpus loader does: the direction a metric name implies
        table["higher_is_better"] = _direction(table["metric"])
    return {"records": table.reindex(columns=list(RECORD_COLUMNS))}


def _datasets(path: Path, data: bytes) -> dict[str, pd.DataFrame]:
    table = _read_csv(path, data)
    _require(table, ["source", "task", "dataset", "description"], DATASET_COLUMNS, path)
    return {"datasets": table.reindex(columns=list(DATASET_COLUMNS))}


def _models(path: Path, data: bytes) -> dict[str, pd.DataFrame]:
    table = _read_parquet(path, data, "models") if path.name.endswith(".parquet") else _read_csv(path, data)
    _require(table, ["model"], MODEL_COLUMNS, path)
    return {"models": table.reindex(columns=list(MODEL_COLUMNS))}


def _public(path: Path, data: bytes) -> dict[str, pd.DataFrame]:
    """The public layout: records (direction from metric names), descriptions from `dataset_desp`, vocab metadata."""
    table = _read_csv(path, data)
    _require(table, PUBLIC_COLUMNS, PUBLIC_COLUMNS, path)
    table["source"] = PUBLIC_SOURCE
    records = table.assign(higher_is_better=_direction(table["metric"])).reindex(columns=list(RECORD_COLUMNS))
    described = table.assign(description=table["dataset_desp"].str.strip(), description_origin=PUBLIC_SOURCE)
    datasets = (
        described[described["description"].fillna("").ne("") & described["task"].notna() & described["dataset"].notna()]
        .sort_values("description", ascending=False)
        .drop_duplicates(["source", "task", "dataset"])
        .reindex(columns=list(DATASET_COLUMNS))
    )
    try:
        meta = public_model_meta(path.parent, table["model"].dropna().unique())
    except CorpusError as exc:
        raise CorpusError(f"a vocab file beside it is unreadable: {exc}", path) from exc
    known = meta[["family", "n_parameters", "license"]].notna().any(axis=1)
    return {"records": records, "datasets": datasets, "models": meta[known].reindex(columns=list(MODEL_COLUMNS))}


_READERS = {"records": _records, "datasets": _datasets, "models": _models, "public": _public}


def _read_csv(path: Path, data: bytes) -> pd.DataFrame:
    """Every cell as text (only an empty cell is missing: a model may be called "NA"); a BOM is dropped."""
    table = pd.read_csv(
        io.BytesIO(data),
        dtype=str,
        keep_default_na=False,
        na_values=[""],
        encoding="utf-8-sig",
        compression="gzip" if path.name.endswith(".gz") else None,
    )
    return table.rename(columns=lambda c: str(c).strip())


def _read_parquet(path: Path, data: bytes, table_kind: str) -> pd.DataFrame:
    """A Parquet file declares its types: a column of the wrong type fails the file, naming the column."""
    table = pq.read_table(io.BytesIO(data))
    for column in table.schema:
        expected = _PARQUET_KINDS[table_kind].get(column.name)
        if expected and not _parquet_type_is(expected, column.type):
            raise CorpusError(
                f"column {column.name!r} has Parquet type {column.type}; expected {expected}", path, field=column.name
            )
    return table.to_pandas()


def _parquet_type_is(kind: str, dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_null(dtype):
        return True
    if kind == "text":
        return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)
    if kind == "flag":
        return pa.types.is_boolean(dtype) or pa.types.is_integer(dtype)
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)


def _require(table: pd.DataFrame, required, expected, path: Path) -> None:
    missing = [c for c in required if c not in table.columns]
    if not missing:
        return
    header = ",".join(map(str, table.columns))
    hint = next((f"; the header looks {sep!r}-delimited: use commas" for sep in (";", "\t", "|") if sep in header), "")
    raise CorpusError(f"missing column(s) {missing}; expected {', '.join(expected)}{hint}", path, field=missing[0])


def _direction(metrics: pd.Series) -> np.ndarray:
    """1 = higher is better, 0 = lower (error-type metric names), missing where the metric is."""
    direction = {m: float(not lower_is_better(m)) for m in metrics.dropna().unique() if isinstance(m, str)}
    return metrics.map(direction).to_numpy(dtype=float)
