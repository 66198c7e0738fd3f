"""The leaderboard corpus: typed records in, one normalised table of (group, model, value, z) out.

Three layouts load: a record-store snapshot (`manifest.json` + Parquet tables, written by `modellens ingest`; a store
directory opens its current snapshot), the shared corpus layout (`records/*.csv[.gz]|*.parquet`, `datasets.csv`,
`models.csv.gz`) and the public ModelLens corpus layout (`data.csv` with `task, dataset, model, metric, value,
dataset_desp` plus its JSON vocab files). Rows that cannot be used (missing fields, non-numeric or non-finite values;
in a snapshot: its open quarantine) are kept in `Corpus.rejected` with a reason: nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lens.benchmarks import benchmark_family
from lens.errors import CorpusError
from lens.names import ModelNames, family_of, parse_size, size_buckets
from lens.normalise import (
    GROUP_COLUMNS,
    DuplicateReport,
    aggregate_duplicates,
    group_stats,
    lower_is_better,
    standardise,
)

log = logging.getLogger(__name__)

RECORD_COLUMNS = ("source", "task", "dataset", "model", "metric", "value", "higher_is_better")
DATASET_COLUMNS = ("source", "task", "dataset", "description_origin", "description")
MODEL_COLUMNS = (
    "model",
    "n_parameters",
    "architecture",
    "license",
    "release_date",
    "open_weights",
    "hf_id",
    "meta_source",
    "model_description",
    "family",
)
SNAPSHOT_LAYOUT = "modellens-snapshot"
PUBLIC_COLUMNS = ("task", "dataset", "model", "metric", "value", "dataset_desp")
PUBLIC_SOURCE = "modellens-corpus"
_RECORD_SUFFIXES = (".csv", ".csv.gz", ".parquet")


@dataclass(frozen=True, slots=True)
class Record:
    """One published result: `model` scored `value` on `metric` of `dataset` (a `task`) on leaderboard `source`."""

    source: str
    task: str
    dataset: str
    model: str
    metric: str
    value: float
    higher_is_better: bool

    def __post_init__(self) -> None:
        for name in ("source", "task", "dataset", "model", "metric"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"Record.{name} must be a non-empty string, got {getattr(self, name)!r}")
        if not isinstance(self.value, int | float) or not math.isfinite(self.value):
            raise ValueError(f"Record.value must be a finite number, got {self.value!r}")


@dataclass(frozen=True)
class Corpus:
    """Normalised records with their group and model vocabularies.

    `records` has one row per (group, model): `group_id`, `model_id`, `value` (direction-corrected mean of the raw
    values, higher is better), `n_obs` (raw rows averaged) and `z` (within-group z-score). `groups` and `models` are
    indexed by id and hold every group and model known, including those a split has removed all records of, so
    cold-start entities keep their metadata.
    """

    records: pd.DataFrame
    groups: pd.DataFrame
    models: pd.DataFrame
    names: ModelNames
    rejected: pd.DataFrame = field(repr=False)
    duplicates: DuplicateReport | None = None

    @property
    def fingerprint(self) -> str:
        """Content hash of the normalised records: same data, same fingerprint, whatever the file order."""
        keyed = pd.DataFrame(
            {
                "group": self.groups["key"].to_numpy()[self.records["group_id"].to_numpy()],
                "model": self.models["key"].to_numpy()[self.records["model_id"].to_numpy()],
                "value": self.records["value"].round(9).to_numpy(),
            }
        ).sort_values(["group", "model"], ignore_index=True)
        digest = hashlib.sha256(pd.util.hash_pandas_object(keyed, index=False).to_numpy().tobytes())
        return digest.hexdigest()[:16]

    def restrict(self, mask: np.ndarray) -> Corpus:
        """The corpus with only the records where `mask` is true, z-scores and group sizes recomputed on them."""
        kept = standardise(self.records.loc[mask, ["group_id", "model_id", "value", "n_obs"]].reset_index(drop=True))
        stats = group_stats(kept, len(self.groups))
        groups = self.groups.assign(n_models=stats["n_models"], trainable=stats["trainable"])
        return Corpus(kept, groups, self.models, self.names, self.rejected, self.duplicates)

    def model_ids(self, names: Iterable[str]) -> np.ndarray:
        """Ids of known models by raw name (any spelling that canonicalises to a known key); -1 where unknown."""
        index = pd.Index(self.models["key"])
        return index.get_indexer(self.names.keys(list(names)))

    def summary(self) -> dict[str, int]:
        return {
            "records": len(self.records),
            "models": int(self.records["model_id"].nunique()),
            "groups": int((self.groups["n_models"] > 0).sum()),
            "trainable_groups": int(self.groups["trainable"].sum()),
            "datasets": int(self.groups.loc[self.groups["n_models"] > 0, "dataset"].nunique()),
            "benchmark_families": int(self.groups.loc[self.groups["n_models"] > 0, "benchmark"].nunique()),
            "rejected": len(self.rejected),
        }

    @classmethod
    def from_records(
        cls,
        records: Iterable[Record],
        descriptions: pd.DataFrame | None = None,
        model_meta: pd.DataFrame | None = None,
    ) -> Corpus:
        """Build a corpus from typed records (tests, generated data, ingestion)."""
        frame = pd.DataFrame([_asdict(r) for r in records])
        if frame.empty:
            raise CorpusError("no records given")
        return build_corpus(frame, descriptions, model_meta, pd.DataFrame(columns=[*RECORD_COLUMNS, "file", "reason"]))


def _asdict(record: Record) -> dict[str, object]:
    return {name: getattr(record, name) for name in RECORD_COLUMNS}


def load_corpus(path: Path | str) -> Corpus:
    """Load and normalise a corpus directory in any supported layout (a store directory opens its current snapshot)."""
    root = Path(path)
    if (root / "catalog.sqlite").is_file():
        from lens.store import Store  # the store imports this module's schemas

        root = Store(root).current_dir()
    if (root / "manifest.json").is_file():
        raw, rejected, descriptions, meta = _read_snapshot(root)
    elif (root / "records").is_dir():
        raw, rejected = _read_record_files(root / "records")
        descriptions = _read_descriptions(root / "datasets.csv")
        meta = _read_model_meta(root / "models.csv.gz")
    elif (root / "data.csv").is_file():
        raw, rejected, descriptions, meta = _read_public_layout(root)
    else:
        raise CorpusError(
            "not a corpus directory: expected records/ (shared layout), data.csv (public ModelLens layout), "
            "manifest.json (a store snapshot) or catalog.sqlite (a record store)",
            root,
        )
    return build_corpus(raw, descriptions, meta, rejected)


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.name.endswith(".parquet"):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"model": str, "dataset": str, "task": str, "metric": str, "source": str})
    except (OSError, ValueError) as exc:
        raise CorpusError(f"cannot read table: {exc}", path) from exc


def _read_record_files(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    files = sorted(p for p in directory.iterdir() if p.name.endswith(_RECORD_SUFFIXES))
    if not files:
        raise CorpusError("no record files (*.csv, *.csv.gz, *.parquet)", directory)
    frames, rejected = [], []
    for path in files:
        table = _read_table(path)
        missing = [c for c in RECORD_COLUMNS if c not in table.columns and c != "higher_is_better"]
        if missing:
            raise CorpusError(f"missing column(s) {missing}; expected {list(RECORD_COLUMNS)}", path, field=missing[0])
        good, bad = _validate_rows(table.assign(file=path.name), path)
        frames.append(good)
        rejected.append(bad)
    return pd.concat(frames, ignore_index=True), pd.concat(rejected, ignore_index=True)


def _validate_rows(table: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into usable ones and rejected ones with a reason (row numbers are 1-based data rows)."""
    table = table.assign(row=np.arange(1, len(table) + 1))
    value = pd.to_numeric(table["value"], errors="coerce")
    reason = pd.Series("", index=table.index, dtype=object)
    for column in ("source", "task", "dataset", "model", "metric"):
        empty = table[column].isna() | (table[column].astype(str).str.strip() == "")
        reason = reason.mask(empty & (reason == ""), f"empty {column}")
    reason = reason.mask(value.isna() & (reason == ""), "value is not a number")
    reason = reason.mask(~np.isfinite(value.fillna(0.0)) & (reason == ""), "value is not finite")
    bad = reason != ""
    if bad.any():
        log.warning(
            "%s: rejected %d of %d rows (first: row %d, %s)",
            path.name,
            bad.sum(),
            len(table),
            table.loc[bad, "row"].iloc[0],
            reason[bad].iloc[0],
        )
    good = table.loc[~bad].assign(value=value[~bad].astype(float))
    for column in ("source", "task", "dataset", "model", "metric"):
        good[column] = good[column].astype(str).str.strip()
    if "higher_is_better" not in good.columns:
        good["higher_is_better"] = np.nan
    return good, table.loc[bad].assign(reason=reason[bad])


def _read_descriptions(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=["source", "task", "dataset", "description"])
    table = _read_table(path)
    return table[["source", "task", "dataset", "description"]].fillna({"description": ""})


_META_COLUMNS = ["model", "n_parameters", "architecture", "license", "hf_id", "model_description", "family"]


def _read_model_meta(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=_META_COLUMNS)
    table = _read_table(path)
    table["family"] = None
    return table.reindex(columns=_META_COLUMNS)


def _read_public_layout(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    path = root / "data.csv"
    table = _read_table(path)
    missing = [c for c in PUBLIC_COLUMNS if c not in table.columns]
    if missing:
        raise CorpusError(f"missing column(s) {missing}; expected {list(PUBLIC_COLUMNS)}", path, field=missing[0])
    table = table.assign(source=PUBLIC_SOURCE, higher_is_better=np.nan, file=path.name)
    good, rejected = _validate_rows(table, path)
    descriptions = (
        good.assign(description=good["dataset_desp"].fillna("").astype(str).str.strip())
        .sort_values("description", ascending=False)
        .drop_duplicates(["source", "task", "dataset"])[["source", "task", "dataset", "description"]]
    )
    return good.drop(columns=["dataset_desp"]), rejected, descriptions, public_model_meta(root, good["model"])


def public_model_meta(root: Path, record_models: Iterable[str]) -> pd.DataFrame:
    """Model metadata of the public layout: `model, family, n_parameters, license` from its JSON vocab files.

    Raises:
        CorpusError: a vocab file is not valid JSON.
    """
    profile = _read_json(root / "model_profile.json")
    families = _read_json(root / "model2family.json")
    names = sorted(set(record_models) | set(profile) | set(families))
    meta = pd.DataFrame({"model": names})
    meta["family"] = [str((profile.get(n) or {}).get("family") or families.get(n) or "") or None for n in names]
    meta["n_parameters"] = [_billions_to_params((profile.get(n) or {}).get("size")) for n in names]
    meta["license"] = [(profile.get(n) or {}).get("license") for n in names]
    return meta


def _read_snapshot(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A store snapshot: admitted records, dataset descriptions, model metadata; its open quarantine as `rejected`."""
    manifest = _read_json_file(root / "manifest.json")
    if manifest.get("layout") != SNAPSHOT_LAYOUT:
        raise CorpusError(f"manifest.json is not a {SNAPSHOT_LAYOUT} manifest", root / "manifest.json")
    try:
        raw = pd.read_parquet(root / "records.parquet", columns=list(RECORD_COLUMNS))
        datasets = pd.read_parquet(root / "datasets.parquet", columns=["source", "task", "dataset", "description"])
        meta = pd.read_parquet(root / "models.parquet").reindex(columns=_META_COLUMNS)
        quarantine = pd.read_parquet(root / "quarantine.parquet")
    except (OSError, ValueError) as exc:
        raise CorpusError(f"cannot read snapshot: {exc}", root) from exc
    if raw.empty:
        raise CorpusError("the snapshot holds no records", root)
    open_records = quarantine[(quarantine["table"] == "records") & quarantine["resolved_in"].isna()]
    rows = [json.loads(data) for data in open_records["data"]]
    rejected = (
        pd.DataFrame(rows)
        .reindex(columns=list(RECORD_COLUMNS))
        .assign(
            file=open_records["origin"].to_numpy(),
            row=open_records["row"].to_numpy(),
            reason=open_records["reason"].to_numpy(),
        )
    )
    return raw, rejected, datasets.fillna({"description": ""}), meta


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    data = _read_json_file(path)
    return data.get("models", data)


def _read_json_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorpusError(f"invalid JSON: {exc}", path) from exc
    return data if isinstance(data, dict) else {}


def _billions_to_params(size: object) -> float:
    try:
        value = float(size)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan  # "unknown" and unparsable sizes stay unknown, never 0
    return value * 1e9 if value > 0 else math.nan


def build_corpus(
    raw: pd.DataFrame,
    descriptions: pd.DataFrame | None,
    model_meta: pd.DataFrame | None,
    rejected: pd.DataFrame,
) -> Corpus:
    """Canonicalise names, define groups, flip directions, average duplicates and z-score."""
    raw = raw.copy()
    given = pd.to_numeric(raw["higher_is_better"], errors="coerce")
    unknown_direction = given.isna()
    if unknown_direction.any():
        metrics = raw.loc[unknown_direction, "metric"]
        flip = metrics.map({m: lower_is_better(m) for m in metrics.unique()}).astype(bool)
        given = given.mask(unknown_direction, (~flip).astype(float))
        log.info("direction from metric names for %d rows: %d lower-is-better", unknown_direction.sum(), flip.sum())
    raw["higher_is_better"] = given.astype(bool)

    meta = model_meta if model_meta is not None else pd.DataFrame(columns=["model"])
    hf_ids = {}
    if "hf_id" in meta.columns:
        known = meta.dropna(subset=["hf_id"])
        hf_ids = dict(zip(known["model"], known["hf_id"], strict=True))
    names = ModelNames.build(pd.concat([raw["model"], meta["model"]]).unique(), hf_ids)

    raw_names = raw["model"].astype("category")
    keys = pd.Categorical(names.keys(list(raw_names.cat.categories)))
    raw["key"] = np.asarray(keys)[raw_names.cat.codes.to_numpy()]
    models = _model_table(raw, meta, names)
    raw["model_id"] = pd.Index(models["key"]).get_indexer(raw["key"])

    group_keys = raw[list(GROUP_COLUMNS)].drop_duplicates().sort_values(list(GROUP_COLUMNS), ignore_index=True)
    groups = _group_table(group_keys, raw, descriptions)
    raw = raw.merge(group_keys.reset_index(names="group_id"), on=list(GROUP_COLUMNS), how="left")
    raw["value"] = np.where(raw["higher_is_better"], raw["value"], -raw["value"])

    records, duplicates = aggregate_duplicates(raw[["group_id", "model_id", "value"]])
    records = standardise(records)
    stats = group_stats(records, len(groups))
    groups = groups.assign(n_models=stats["n_models"], trainable=stats["trainable"])
    return Corpus(records, groups, models, names, rejected.reset_index(drop=True), duplicates)


def _group_table(group_keys: pd.DataFrame, raw: pd.DataFrame, descriptions: pd.DataFrame | None) -> pd.DataFrame:
    groups = group_keys.copy()
    direction = raw.groupby(list(GROUP_COLUMNS))["higher_is_better"].first()
    groups["higher_is_better"] = direction.reindex(pd.MultiIndex.from_frame(group_keys)).to_numpy()
    if descriptions is not None and len(descriptions):
        by_dataset = descriptions.drop_duplicates(["source", "task", "dataset"])
        groups = groups.merge(by_dataset, on=["source", "task", "dataset"], how="left")
    groups["description"] = groups.get("description", pd.Series("", index=groups.index)).fillna("").astype(str)
    groups["benchmark"] = groups["dataset"].map({d: benchmark_family(d) for d in groups["dataset"].unique()})
    groups["key"] = groups[list(GROUP_COLUMNS)].agg("|".join, axis=1)
    groups["text"] = [
        f"{d} ({t}, {m}): {desc}" if desc else f"{d} | task: {t} | metric: {m}"
        for d, t, m, desc in zip(
            groups["dataset"], groups["task"], groups["metric"], groups["description"], strict=True
        )
    ]
    groups.index.name = "group_id"
    return groups


def _model_table(raw: pd.DataFrame, meta: pd.DataFrame, names: ModelNames) -> pd.DataFrame:
    """One row per canonical key: display name, parameters, license, family, size bucket and a text to embed."""
    spellings = raw.groupby(["key", "model"], observed=True).size().sort_values(ascending=False, kind="stable")
    seen = spellings.reset_index().drop_duplicates("key").set_index("key")["model"].rename("name")
    meta = meta.assign(key=names.keys(list(meta["model"]))) if len(meta) else meta.assign(key=[])
    first = meta.groupby("key").first() if len(meta) else pd.DataFrame()
    keys = sorted(set(seen.index) | set(first.index))
    models = pd.DataFrame({"key": keys})
    models["name"] = models["key"].map(seen).fillna(models["key"].map(first.get("model", pd.Series(dtype=str))))

    def column(name: str) -> pd.Series:
        return models["key"].map(first[name]) if name in first.columns else pd.Series(None, index=models.index)

    params = pd.to_numeric(column("n_parameters"), errors="coerce")
    parsed = models["name"].map(parse_size).astype(float)
    models["n_parameters"] = params.where(params > 0, parsed)
    models["size_bucket"] = size_buckets(models["n_parameters"].to_numpy(dtype=float))
    models["license"] = column("license").astype(object).where(column("license").notna(), None)
    architecture = column("architecture")
    given = column("family")
    models["family"] = [
        str(g).lower() if isinstance(g, str) and g else family_of(n, a if isinstance(a, str) else None)
        for n, a, g in zip(models["name"], architecture, given, strict=True)
    ]
    description = column("model_description").fillna("").astype(str)
    models["text"] = [
        f"{n}: {d}" if d else f"{n} | family: {f}"
        for n, d, f in zip(models["name"], description, models["family"], strict=True)
    ]
    models.index.name = "model_id"
    return models
