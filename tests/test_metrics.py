import math

import numpy as np
import pytest

from lens.metrics import (
    KS,
    GroupMetrics,
    hit_at_k,
    ndcg_at_k,
    rank_positions,
    recall_at_k,
    regret_at_1,
    retrieval_hit_at_k,
    score_group,
    summarize,
    wtau_official,
    wtau_top,
)

GT5 = [0.9, 0.8, 0.7, 0.6, 0.5]
GT6 = [72.1, 65.0, 80.3, 55.2, 61.7, 79.9]

# spec §4.4 golden table: gt, pred, τ_w official, τ_w top-weighted, NDCG@1, Hit@1, Rec@1, NDCG@3, Hit@3, Rec@3
GOLDEN = [
    (GT5, [5, 4, 3, 2, 1], 1.0, 1.0, 1.0, 1, 1.0, 1.0, 1, 1.0),
    (GT5, [1, 2, 3, 4, 5], -1.0, -1.0, 0.0, 0, 0.0, 0.199407, 0, 0.333333),
    (GT5, [4, 5, 3, 2, 1], 0.90146, 0.671533, 0.681793, 0, 0.0, 0.92827, 1, 1.0),
    (GT5, [5, 4, 3, 1, 2], 0.671533, 0.90146, 1.0, 1, 1.0, 1.0, 1, 1.0),
    (GT6, [0.3, -0.1, 0.2, -0.5, 0.4, 0.9], 0.504762, 0.180952, 0.978029, 0, 0.0, 0.730998, 0, 0.666667),
]
IDS = ["identity", "reversed", "top2-swapped", "bottom2-swapped", "six-items"]


def arr(values) -> np.ndarray:
    return np.asarray(values, dtype=float)


def group(n: int, tau: float, ndcg: float = 0.0, retrieval: dict[int, float] | None = None) -> GroupMetrics:
    per_k = {k: ndcg for k in KS}
    return GroupMetrics(n, tau, -tau, per_k, per_k, per_k, 0.5, retrieval or {})


@pytest.mark.parametrize("case", GOLDEN, ids=IDS)
def test_golden_wtau_official(case):
    gt, pred, official, *_ = case
    assert wtau_official(arr(gt), arr(pred)) == pytest.approx(official, abs=1e-6)


@pytest.mark.parametrize("case", GOLDEN, ids=IDS)
def test_golden_wtau_top(case):
    gt, pred, _, top, *_ = case
    assert wtau_top(arr(gt), arr(pred)) == pytest.approx(top, abs=1e-6)


@pytest.mark.parametrize("case", GOLDEN, ids=IDS)
def test_golden_at_1(case):
    gt, pred, _, _, ndcg, hit, rec, *_ = case
    assert ndcg_at_k(arr(gt), arr(pred), 1) == pytest.approx(ndcg, abs=1e-6)
    assert hit_at_k(arr(gt), arr(pred), 1) == hit
    assert recall_at_k(arr(gt), arr(pred), 1) == pytest.approx(rec, abs=1e-6)


@pytest.mark.parametrize("case", GOLDEN, ids=IDS)
def test_golden_at_3(case):
    gt, pred, *_, ndcg, hit, rec = case
    assert ndcg_at_k(arr(gt), arr(pred), 3) == pytest.approx(ndcg, abs=1e-6)
    assert hit_at_k(arr(gt), arr(pred), 3) == hit
    assert recall_at_k(arr(gt), arr(pred), 3) == pytest.approx(rec, abs=1e-6)


def test_rank_positions_breaks_ties_by_earlier_index():
    assert rank_positions(arr([1.0, 3.0, 3.0, 1.0, 2.0])).tolist() == [3, 0, 1, 4, 2]


def test_tied_pred_is_deterministic_and_earlier_index_wins():
    gt, pred = arr([0.1, 0.9, 0.5, 0.8]), arr([1.0, 2.0, 2.0, 2.0])
    runs = {(wtau_top(gt, pred), ndcg_at_k(gt, pred, 1), hit_at_k(gt, pred, 1)) for _ in range(20)}
    assert runs == {(wtau_top(gt, pred), ndcg_at_k(gt, pred, 1), 1.0)}  # index 1 (the true best) is first of the tie


def test_tied_pred_later_index_loses():
    gt, pred = arr([0.1, 0.5, 0.9]), arr([0.0, 1.0, 1.0])
    assert hit_at_k(gt, pred, 1) == 0.0
    assert regret_at_1(gt, pred) == pytest.approx(0.5, abs=1e-6)


def test_hit_uses_first_of_tied_true_best():
    gt = arr([0.2, 0.9, 0.9])
    assert hit_at_k(gt, arr([0.0, 1.0, 2.0]), 1) == 0.0
    assert hit_at_k(gt, arr([0.0, 2.0, 1.0]), 1) == 1.0


def test_tau_of_constant_pred_is_zero():
    gt = arr(GT6)
    assert wtau_top(gt, np.zeros(6)) == 0.0
    assert wtau_official(gt, np.zeros(6)) == 0.0


def test_all_equal_gt_gives_zero_ndcg_and_regret():
    gt, pred = np.ones(4), arr([1, 2, 3, 4])
    assert ndcg_at_k(gt, pred, 2) == 0.0
    assert regret_at_1(gt, pred) == 0.0


def test_k_larger_than_n_is_clipped():
    gt, pred = arr(GT5), arr([1, 2, 3, 4, 5])
    assert recall_at_k(gt, pred, 50) == 1.0
    assert hit_at_k(gt, pred, 50) == 1.0
    assert ndcg_at_k(gt, pred, 50) == pytest.approx(ndcg_at_k(gt, pred, 5), abs=1e-6)


def test_regret_zero_when_top1_is_best():
    assert regret_at_1(arr(GT5), arr([5, 4, 3, 2, 1])) == 0.0


def test_regret_one_when_top1_is_worst():
    assert regret_at_1(arr(GT5), arr([1, 2, 3, 4, 5])) == pytest.approx(1.0, abs=1e-6)


def test_regret_fraction_of_range():
    assert regret_at_1(arr(GT6), arr([0.3, -0.1, 0.2, -0.5, 0.4, 0.9])) == pytest.approx(0.4 / 25.1, abs=1e-6)


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError):
        wtau_top(arr([1, 2, 3]), arr([1, 2]))


def test_retrieval_hit_matches_full_stable_sort():
    rng = np.random.default_rng(7)
    for _ in range(200):
        pool = rng.integers(0, 20, size=int(rng.integers(2, 300))).astype(float)  # many ties
        best, k = int(rng.integers(len(pool))), int(rng.integers(1, 60))
        expected = float(best in np.argsort(-pool, kind="stable")[:k])
        assert retrieval_hit_at_k(pool, best, k) == expected


def test_score_group_fills_every_k():
    g = score_group(arr(GT6), arr([0.3, -0.1, 0.2, -0.5, 0.4, 0.9]))
    assert g.n == 6
    assert set(g.ndcg) == set(g.hit) == set(g.recall) == set(KS)
    assert g.retrieval_hit == {}


def test_score_group_scores_pool_when_given():
    pool = arr([0.1, 0.9, 0.5, 0.9])
    g = score_group(arr(GT5), arr([5, 4, 3, 2, 1]), ks=(1, 2), pool_scores=pool, best_in_pool=3)
    assert g.retrieval_hit == {1: 0.0, 2: 1.0}


def test_score_group_needs_pool_and_best_together():
    with pytest.raises(ValueError):
        score_group(arr(GT5), arr(GT5), pool_scores=arr(GT5))


def test_summarize_weights_tau_by_pair_count():
    out = summarize([group(2, 1.0), group(5, 0.0)])  # weights 1 and 10
    assert out["wtau_top"] == pytest.approx(1 / 11, abs=1e-6)
    assert out["wtau_official"] == pytest.approx(-1 / 11, abs=1e-6)
    assert out["wtau_top_mean"] == pytest.approx(0.5, abs=1e-6)


def test_summarize_averages_top_k_over_groups_with_n_at_least_k():
    out = summarize([group(5, 0.0, ndcg=1.0), group(20, 0.0, ndcg=0.0)])
    assert out["ndcg@1"] == pytest.approx(0.5, abs=1e-6)
    assert out["ndcg@10"] == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(out["ndcg@30"])
    assert math.isnan(out["hit@50"])


def test_summarize_retrieval_only_over_groups_that_have_it():
    out = summarize([group(5, 0.0, retrieval={k: 1.0 for k in KS}), group(5, 0.0)])
    assert out["rhit@10"] == 1.0
    assert math.isnan(summarize([group(5, 0.0)])["rhit@1"])


def test_summarize_keys():
    out = summarize([group(5, 0.0)])
    per_k = [f"{m}@{k}" for m in ("ndcg", "hit", "rec") for k in KS]
    rhit = [f"rhit@{k}" for k in KS]
    assert set(out) == {"wtau_top", "wtau_official", "wtau_top_mean", *per_k, "regret@1", *rhit, "groups"}
    assert out["groups"] == 1.0
    assert out["regret@1"] == 0.5


def test_random_ranking_hit_at_10_is_k_over_n():
    rng = np.random.default_rng(2025)
    gt = rng.normal(size=50)
    hits = [hit_at_k(gt, rng.normal(size=50), 10) for _ in range(4000)]
    assert np.mean(hits) == pytest.approx(10 / 50, abs=0.02)
