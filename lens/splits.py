"""Seeded, reloadable train/val/test splits for the four evaluation settings.

A split is a manifest of held-out *units*, named by string keys rather than integer ids so it can be written to disk,
reviewed, and re-applied to a later version of the corpus:

- `completion`: 10% / 10% of observed (group, model) entries (performance completion);
- `new_dataset`: 10% / 10% of benchmark families (`lens.benchmarks`), so no version, translation, shot setting or
  release of a held-out benchmark stays in training;
- `new_model`: 10% / 10% of models with all their records;
- `family`: test = every model of the named families (default: the 13 modern LLM families of spec 2.8),
  val = 10% of the remaining models.

`stable_new_dataset` holds out benchmark families by a hash of their name instead of a seeded draw, so each family
stays on its side in every snapshot (what comparing models trained on different snapshots needs).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lens.corpus import Corpus
from lens.errors import SplitError
from lens.names import MODERN_FAMILIES

log = logging.getLogger(__name__)

SPLITS = ("completion", "new_dataset", "new_model", "family")
STABLE_SPLIT = "stable_new_dataset"
"""Not one of `SPLITS`: it has no seed to vary and no val part, and `evaluate --split all` keeps the four settings."""
UNITS = ("entry", "benchmark", "model", "family")


@dataclass(frozen=True)
class HeldOut:
    """Units held out for one part of a split: `unit` is one of `UNITS`, `items` their sorted keys."""

    unit: str
    items: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise SplitError(f"unknown held-out unit {self.unit!r}; expected one of {UNITS}")

    def mask(self, corpus: Corpus) -> np.ndarray:
        """Boolean mask over `corpus.records` of the records this part holds out."""
        items = set(self.items)
        records = corpus.records
        if self.unit == "entry":
            keys = _entry_keys(corpus)
            return np.fromiter((k in items for k in keys), dtype=bool, count=len(keys))
        if self.unit == "benchmark":
            return corpus.groups["benchmark"].isin(items).to_numpy()[records["group_id"].to_numpy()]
        column = "key" if self.unit == "model" else "family"
        return corpus.models[column].isin(items).to_numpy()[records["model_id"].to_numpy()]


@dataclass(frozen=True)
class SplitParts:
    """The three parts of a split, each a corpus with z-scores recomputed on its own records."""

    train: Corpus
    val: Corpus
    test: Corpus


@dataclass(frozen=True)
class Split:
    """A named, seeded split manifest."""

    name: str
    seed: int
    corpus_fingerprint: str
    val: HeldOut
    test: HeldOut

    def partition(self, corpus: Corpus) -> SplitParts:
        """Apply the manifest: records of held-out units leave training; val and test never overlap."""
        if corpus.fingerprint != self.corpus_fingerprint:
            log.warning(
                "split %s was made on corpus %s, applying it to corpus %s: held-out units are matched by name",
                self.name,
                self.corpus_fingerprint,
                corpus.fingerprint,
            )
        test = self.test.mask(corpus)
        val = self.val.mask(corpus) & ~test
        return SplitParts(train=corpus.restrict(~(test | val)), val=corpus.restrict(val), test=corpus.restrict(test))

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = asdict(self) | {"format": 1}
        path.write_text(json.dumps(payload, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Split:
        try:
            payload = json.loads(Path(path).read_text())
            return cls(
                name=payload["name"],
                seed=int(payload["seed"]),
                corpus_fingerprint=payload["corpus_fingerprint"],
                val=HeldOut(payload["val"]["unit"], tuple(payload["val"]["items"])),
                test=HeldOut(payload["test"]["unit"], tuple(payload["test"]["items"])),
            )
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise SplitError(f"cannot read split manifest {path}: {exc}") from exc


def make_split(
    corpus: Corpus,
    name: str,
    seed: int = 2025,
    fraction: float = 0.1,
    families: tuple[str, ...] = MODERN_FAMILIES,
) -> Split:
    """Draw a split of `corpus`; the same corpus, name and seed always give the same manifest."""
    if name not in SPLITS:
        raise SplitError(f"unknown split {name!r}; expected one of {SPLITS}")
    rng = np.random.default_rng(seed)
    fingerprint = corpus.fingerprint
    if name == "family":
        present = set(corpus.models["family"].iloc[corpus.records["model_id"].unique()])
        held = tuple(sorted(f for f in families if f in present))
        if not held:
            raise SplitError(f"none of the families {families} has records in this corpus")
        test = HeldOut("family", held)
        remaining = _models_with_records(corpus)
        remaining = remaining[~corpus.models.loc[remaining.index, "family"].isin(held)]
        val_items, _ = _draw(sorted(remaining["key"]), rng, fraction, 0.0)
        return Split(name, seed, fingerprint, HeldOut("model", val_items), test)
    if name == "completion":
        unit, universe = "entry", sorted(_entry_keys(corpus))
    elif name == "new_dataset":
        live = corpus.groups.loc[corpus.groups["n_models"] > 0, "benchmark"]
        unit, universe = "benchmark", sorted(set(live))
    else:
        unit, universe = "model", sorted(_models_with_records(corpus)["key"])
    val_items, test_items = _draw(universe, rng, fraction, fraction)
    return Split(name, seed, fingerprint, HeldOut(unit, val_items), HeldOut(unit, test_items))


def stable_new_dataset(corpus: Corpus, fraction: float = 0.1) -> Split:
    """Hold out the benchmark families whose name hashes into the lowest `fraction` of [0, 1) (`stable_position`).

    A seeded draw (`new_dataset`) reshuffles as families arrive, so a model trained on yesterday's snapshot could be
    scored today on families it was trained on. A hash fixes each family's side for good: models trained on different
    snapshots are compared on today's held-out families without leakage, and the held-out set only grows as new
    families hash into it. The val part is empty (rankers select epochs inside their training part), and the seed is
    0 because nothing is drawn; the manifest saves and reloads like any other.

    Raises:
        SplitError: `fraction` is not in (0, 1), or no benchmark family of this corpus hashes into the held-out side.
    """
    if not 0.0 < fraction < 1.0:
        raise SplitError(f"the held-out fraction must be in (0, 1), got {fraction}")
    live = sorted(set(corpus.groups.loc[corpus.groups["n_models"] > 0, "benchmark"]))
    held = tuple(family for family in live if stable_position(family) < fraction)
    if not held:
        raise SplitError(
            f"none of the {len(live)} benchmark families hashes into the held-out {fraction:.0%}: raise the fraction"
        )
    return Split(STABLE_SPLIT, 0, corpus.fingerprint, HeldOut("benchmark", ()), HeldOut("benchmark", held))


def stable_position(name: str) -> float:
    """Where `name` falls in [0, 1): its SHA-1 read as a fraction. Depends on nothing but the name."""
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "big") / 2**64


def _draw(universe: list[str], rng: np.random.Generator, val: float, test: float) -> tuple[tuple[str, ...], ...]:
    order = rng.permutation(len(universe))
    n_test = round(test * len(universe))
    n_val = round(val * len(universe))
    pick = np.asarray(universe, dtype=object)
    return tuple(sorted(pick[order[n_test : n_test + n_val]])), tuple(sorted(pick[order[:n_test]]))


def _models_with_records(corpus: Corpus):
    return corpus.models.loc[np.unique(corpus.records["model_id"].to_numpy())]


def _entry_keys(corpus: Corpus) -> list[str]:
    groups = corpus.groups["key"].to_numpy()[corpus.records["group_id"].to_numpy()]
    models = corpus.models["key"].to_numpy()[corpus.records["model_id"].to_numpy()]
    return [f"{g}\t{m}" for g, m in zip(groups, models, strict=True)]


def manifest_path(directory: Path, name: str, seed: int) -> Path:
    return directory / f"{name}-seed{seed}.json"
