"""Rankers from counting and averaging training records: random, popularity, global and task-conditional mean z.

Means are shrunk towards a prior with `kappa` pseudo-observations (spec 8), and cold-start models back off through
their (family, size bucket) cell to their family and then to their size bucket, so a new Qwen-7B inherits what
7B-class Qwens did, and a 7B model of a family never seen in training what 7B models did.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from lens.corpus import Corpus
from lens.rankers import Query, Ranker, register

KAPPA = 5.0


def shrunk(total: np.ndarray, count: np.ndarray, prior: np.ndarray | float, kappa: float = KAPPA) -> np.ndarray:
    """Bayesian-shrunk mean: `(sum + kappa * prior) / (n + kappa)`."""
    return (total + kappa * prior) / (count + kappa)


def _trainable_records(corpus: Corpus) -> pd.DataFrame:
    trainable = corpus.groups["trainable"].to_numpy()
    records = corpus.records
    return records[trainable[records["group_id"].to_numpy()]]


class _ModelPriors:
    """Per-model z sums and counts, with (family, size) cell -> family -> size backoff for models without records."""

    def __init__(self, corpus: Corpus, records: pd.DataFrame):
        models = corpus.models
        self.n_models = len(models)
        self.family = pd.factorize(models["family"])[0]
        self.cell = pd.factorize(models["family"] + "#" + models["size_bucket"].astype(str))[0]
        self.size = models["size_bucket"].to_numpy(dtype=int)
        self.cell_family = np.zeros(self.cell.max() + 1, dtype=int)
        self.cell_family[self.cell] = self.family
        self.cell_size = np.zeros(self.cell.max() + 1, dtype=int)
        self.cell_size[self.cell] = self.size
        ids, z = records["model_id"].to_numpy(), records["z"].to_numpy()
        self.total = np.bincount(ids, weights=z, minlength=self.n_models)
        self.count = np.bincount(ids, minlength=self.n_models).astype(float)

    def prior(self, total: np.ndarray, count: np.ndarray, fallback: np.ndarray | float = 0.0) -> np.ndarray:
        """Per-model prior from per-model sums: the cell mean, shrunk to the family mean, shrunk to the size-bucket
        mean, shrunk to `fallback`. A family never seen in training so still ranks its models by size."""
        size_fallback = fallback if np.isscalar(fallback) else _mean_by(self.size, fallback)
        size = shrunk(_sum_by(self.size, total), _sum_by(self.size, count), size_fallback)
        family = shrunk(
            _sum_by(self.family, total)[self.cell_family],
            _sum_by(self.family, count)[self.cell_family],
            size[self.cell_size],
        )
        cell = shrunk(_sum_by(self.cell, total), _sum_by(self.cell, count), family)
        return cell[self.cell]

    def global_mean(self) -> np.ndarray:
        """Each model's shrunk mean z over all training groups; cold-start models get their cell's."""
        return shrunk(self.total, self.count, self.prior(self.total, self.count))


def _sum_by(index: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.bincount(index, weights=values)


def _mean_by(index: np.ndarray, values: np.ndarray) -> np.ndarray:
    return _sum_by(index, values) / np.maximum(np.bincount(index), 1)


@register("random", aliases=("rand",))
class RandomRanker(Ranker):
    """The floor: a seeded random order per query (expected Hit@K = K/n)."""

    def fit(self, corpus: Corpus) -> RandomRanker:
        self.n_models = len(corpus.models)
        return self

    def score(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        # One draw over the whole pool per query, so a model's score does not depend on the other candidates.
        digest = hashlib.sha256(f"{self.context.seed}|{query.group}".encode()).digest()
        scores = np.random.default_rng(int.from_bytes(digest[:8], "little")).random(self.n_models)
        return scores[candidates]


@register("popularity", aliases=("pop", "eval-count"))
class PopularityRanker(Ranker):
    """Query-independent: how many training groups evaluated the model (the leaderboards' own attention)."""

    def fit(self, corpus: Corpus) -> PopularityRanker:
        records = _trainable_records(corpus)
        self.counts = np.bincount(records["model_id"], minlength=len(corpus.models)).astype(float)
        return self

    def score(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        return self.counts[candidates]


@register("global-mean", aliases=("global_mean", "mean-z"))
class GlobalMeanRanker(Ranker):
    """Query-independent: each model's shrunk mean z over every training group."""

    def fit(self, corpus: Corpus) -> GlobalMeanRanker:
        self.scores = _ModelPriors(corpus, _trainable_records(corpus)).global_mean()
        return self

    def score(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        return self.scores[candidates]


@register("task-mean", aliases=("task_mean", "task-conditional"))
class TaskMeanRanker(Ranker):
    """Mean z conditioned on the query's task and metric, shrunk through task to the model's global mean.

    Task type and metric are known at query time, and model strengths are task-specific (an embedding model's
    retrieval skill says little about its classification skill), so this is the strongest cheap baseline.
    """

    def fit(self, corpus: Corpus) -> TaskMeanRanker:
        records = _trainable_records(corpus)
        self.priors = _ModelPriors(corpus, records)
        self.global_scores = self.priors.global_mean()
        self.known = self.priors.count > 0
        groups = corpus.groups
        frame = pd.DataFrame(
            {
                "task": groups["task"].to_numpy()[records["group_id"].to_numpy()],
                "metric": groups["metric"].to_numpy()[records["group_id"].to_numpy()],
                "model_id": records["model_id"].to_numpy(),
                "z": records["z"].to_numpy(),
            }
        )
        self.by_task = _sums(frame, ["task"])
        self.by_task_metric = _sums(frame, ["task", "metric"])
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        return self

    def scores_for(self, task: str, metric: str) -> np.ndarray:
        """Scores of every model for a (task, metric); cached because evaluation asks per group."""
        key = (task, metric)
        if key not in self._cache:
            level = self.global_scores
            for table, index in ((self.by_task, task), (self.by_task_metric, (task, metric))):
                if index in table:
                    total, count = self._dense(*table[index])
                    cold = self.priors.prior(total, count, fallback=level)
                    level = shrunk(total, count, np.where(self.known, level, cold))
            self._cache[key] = level
        return self._cache[key]

    def _dense(self, ids: np.ndarray, totals: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        total = np.zeros(self.priors.n_models)
        count = np.zeros(self.priors.n_models)
        total[ids], count[ids] = totals, counts
        return total, count

    def score(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        return self.scores_for(query.task, query.metric)[candidates]


def _sums(frame: pd.DataFrame, keys: list[str]) -> dict:
    agg = frame.groupby([*keys, "model_id"])["z"].agg(["sum", "size"]).reset_index()
    out = {}
    for key, part in agg.groupby(keys if len(keys) > 1 else keys[0], sort=False):
        out[key] = (part["model_id"].to_numpy(), part["sum"].to_numpy(), part["size"].to_numpy(dtype=float))
    return out
