"""Ranking metrics of the ModelLens evaluation (spec §4.3–4.4): per-group scores and their aggregation.

Every function takes `gt` (ground-truth values, higher is better, already direction-corrected) and `pred` (predicted
scores, higher is better) as 1-d float arrays of the same length n >= 2. Ties are broken stably by array position: the
earlier index ranks first, and the caller orders candidates by model id, so every metric is deterministic.

Both weighted Kendall τ variants are 0.0 when gt or pred is constant: SciPy would answer NaN on raw values, and on
stably tie-broken ranks it would score the caller's model-id order, but a constant ranking carries no information.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import weightedtau

KS = (1, 10, 30, 50)


def rank_positions(values: np.ndarray) -> np.ndarray:
    """Rank position of each item, 0 = best; ties go to the earlier index."""
    order = np.argsort(-np.asarray(values, dtype=float), kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


def _top(values: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-np.asarray(values, dtype=float), kind="stable")[:k]


def _check(gt: np.ndarray, pred: np.ndarray) -> int:
    if gt.ndim != 1 or gt.shape != pred.shape or len(gt) < 2:
        raise ValueError(f"gt and pred must be 1-d arrays of one length >= 2, got shapes {gt.shape} and {pred.shape}")
    return len(gt)


def _tau(gt: np.ndarray, pred: np.ndarray, sign: int) -> float:
    _check(gt, pred)
    if np.ptp(gt) == 0 or np.ptp(pred) == 0:
        return 0.0
    return float(weightedtau(sign * rank_positions(gt), sign * rank_positions(pred), rank=None).statistic)


def wtau_top(gt: np.ndarray, pred: np.ndarray) -> float:
    """Top-weighted Kendall τ_w: negated rank positions make SciPy weigh the best models most (the corrected metric)."""
    return _tau(gt, pred, -1)


def wtau_official(gt: np.ndarray, pred: np.ndarray) -> float:
    """Kendall τ_w as the official code computes it: on rank positions, so it weighs the *worst* models most."""
    return _tau(gt, pred, 1)


def ndcg_at_k(gt: np.ndarray, pred: np.ndarray, k: int) -> float:
    """NDCG@k with per-group min–max relevance and 2^rel − 1 gains; 0.0 when all gt values are equal."""
    n = _check(gt, pred)
    span = float(gt.max() - gt.min())
    if span == 0.0:
        return 0.0
    k = min(k, n)
    gain = 2.0 ** ((gt - gt.min()) / (span + 1e-9)) - 1.0
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(gain[_top(pred, k)] @ discount)
    idcg = float(gain[_top(gt, k)] @ discount) + 1e-9
    return dcg / idcg


def hit_at_k(gt: np.ndarray, pred: np.ndarray, k: int) -> float:
    """1.0 if the true best model (first among ties) is in the top-k of pred."""
    n = _check(gt, pred)
    return float(int(np.argmax(gt)) in _top(pred, min(k, n)))


def recall_at_k(gt: np.ndarray, pred: np.ndarray, k: int) -> float:
    """|top-k(pred) ∩ top-k(gt)| / k; both sets have k items, so this is also Precision@k."""
    n = _check(gt, pred)
    k = min(k, n)
    return len(np.intersect1d(_top(pred, k), _top(gt, k))) / k


def regret_at_1(gt: np.ndarray, pred: np.ndarray) -> float:
    """Share of the group's gt range lost by taking pred's top-1; 0.0 when all gt values are equal."""
    _check(gt, pred)
    span = float(gt.max() - gt.min())
    if span == 0.0:
        return 0.0
    return float(gt.max() - gt[_top(pred, 1)[0]]) / span


def retrieval_hit_at_k(pool_scores: np.ndarray, best: int, k: int) -> float:
    """1.0 if item `best` is in the stable top-k of the whole pool; O(n), since pools hold 17K–50K models per query."""
    target = pool_scores[best]
    rank = int(np.count_nonzero(pool_scores > target)) + int(np.count_nonzero(pool_scores[:best] == target))
    return float(rank < k)


@dataclass(frozen=True, slots=True)
class GroupMetrics:
    """Metrics of one ranking group, keyed by K where they depend on it; `retrieval_hit` is empty without a pool."""

    n: int
    wtau_top: float
    wtau_official: float
    ndcg: dict[int, float]
    hit: dict[int, float]
    recall: dict[int, float]
    regret_at_1: float
    retrieval_hit: dict[int, float] = field(default_factory=dict)


def score_group(
    gt: np.ndarray,
    pred: np.ndarray,
    ks: Sequence[int] = KS,
    pool_scores: np.ndarray | None = None,
    best_in_pool: int | None = None,
) -> GroupMetrics:
    """All metrics of one ranking group; retrieval hits only when the full pool and the best model's index are given."""
    n = _check(gt, pred)
    if (pool_scores is None) != (best_in_pool is None):
        raise ValueError("pool_scores and best_in_pool must be given together")
    retrieval = {} if pool_scores is None else {k: retrieval_hit_at_k(pool_scores, best_in_pool, k) for k in ks}
    return GroupMetrics(
        n=n,
        wtau_top=wtau_top(gt, pred),
        wtau_official=wtau_official(gt, pred),
        ndcg={k: ndcg_at_k(gt, pred, k) for k in ks},
        hit={k: hit_at_k(gt, pred, k) for k in ks},
        recall={k: recall_at_k(gt, pred, k) for k in ks},
        regret_at_1=regret_at_1(gt, pred),
        retrieval_hit=retrieval,
    )


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def summarize(groups: Sequence[GroupMetrics], ks: Sequence[int] = KS) -> dict[str, float]:
    """Aggregate like the official evaluator: pair-weighted τ_w, top-K metrics over groups with n >= K only."""
    pairs = np.array([g.n * (g.n - 1) / 2 for g in groups], dtype=float)
    total = float(pairs.sum())

    def weighted(values: list[float]) -> float:
        return float(np.dot(pairs, values)) / total if total else math.nan

    out = {
        "wtau_top": weighted([g.wtau_top for g in groups]),
        "wtau_official": weighted([g.wtau_official for g in groups]),
        "wtau_top_mean": _mean([g.wtau_top for g in groups]),
    }
    for name, attr in (("ndcg", "ndcg"), ("hit", "hit"), ("rec", "recall")):
        for k in ks:
            out[f"{name}@{k}"] = _mean([getattr(g, attr)[k] for g in groups if g.n >= k])
    out["regret@1"] = _mean([g.regret_at_1 for g in groups])
    for k in ks:
        out[f"rhit@{k}"] = _mean([g.retrieval_hit[k] for g in groups if g.retrieval_hit])
    out["groups"] = float(len(groups))
    return out
