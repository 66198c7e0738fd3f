"""Tasks both flows start from: the snapshot to work on, its stable held-out split, and scoring a ranker on it.

Every task takes `cache_policy=NO_CACHE`: their inputs are whole corpora (hashing one for a cache key costs seconds
and memory), and a re-run must recompute anyway; reproducibility comes from the snapshot id and the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE

from lens.corpus import Corpus, load_corpus
from lens.evaluate import Evaluation, evaluate
from lens.rankers import Ranker
from lens.settings import Settings
from lens.splits import Split, SplitParts, stable_new_dataset
from lens.store import Store

BREAKDOWN = "task"
"""The group column metrics are broken down by: the task is the domain the domain guardrails watch."""


@dataclass(frozen=True)
class Snapshot:
    """A validated snapshot of the record store, loaded."""

    id: str
    corpus: Corpus
    fingerprint: str
    """`corpus.fingerprint`, hashed once (seconds on the full corpus)."""


@task(cache_policy=NO_CACHE)
def load_snapshot(snapshot: str | None) -> Snapshot:
    """The record store's snapshot `snapshot` (default: the current one), normalised into a corpus.

    Raises:
        StoreError: the store has no such snapshot (or none yet: run `modellens ingest`).
    """
    path = Store(Settings().store_dir).snapshot_dir(snapshot)
    corpus = load_corpus(path)
    return Snapshot(path.name, corpus, corpus.fingerprint)


@task(cache_policy=NO_CACHE)
def hold_out(corpus: Corpus, fraction: float) -> tuple[Split, SplitParts]:
    """The stable held-out split of `corpus` (`lens.splits.stable_new_dataset`) and its parts."""
    split = stable_new_dataset(corpus, fraction)
    return split, split.partition(corpus)


@task(cache_policy=NO_CACHE, task_run_name="evaluate {ranker.name}")
def evaluate_ranker(ranker: Ranker, parts: SplitParts, split: str) -> Evaluation:
    """`ranker` fitted on the training side, scored on the held-out groups overall and per task."""
    return evaluate(ranker, parts, split, "test", by=BREAKDOWN)
