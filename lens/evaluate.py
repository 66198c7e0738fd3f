"""The evaluation harness: every ranker, the same held-out groups, the same metrics (spec 4.3, corrected).

For each held-out group with at least two models and distinct values, a ranker re-ranks the group's observed
candidates (tau_w, NDCG, Hit, Rec, regret). For a seeded sample of groups it also scores the *whole* model pool, and
the group's true best model is looked up there (retrieval Hit@K): what a user searching all models experiences.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import track

from lens.metrics import KS, GroupMetrics, score_group, summarize
from lens.rankers import Query, Ranker
from lens.splits import SplitParts


def threads_env() -> str:
    """The `OMP_NUM_THREADS=N ` prefix of the command line a result came from, if it was set: a trained network's
    weights change with torch's thread count (float sums run in another order), and so do its rows, so a result
    names it."""
    threads = os.environ.get("OMP_NUM_THREADS")
    return f"OMP_NUM_THREADS={threads} " if threads else ""


@dataclass(frozen=True)
class Evaluation:
    """One ranker's result on one split part."""

    ranker: str
    split: str
    part: str
    metrics: dict[str, float]
    fit_seconds: float
    score_seconds: float
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)
    """The same metrics per value of a group column (`evaluate(..., by="task")`), when asked for."""
    per_seed: dict[str, dict[str, float]] = field(default_factory=dict)
    """Each fit's metrics by ranker seed, when `metrics` is their mean (`over_seeds`)."""


def over_seeds(evaluations: Sequence[Evaluation], seeds: Sequence[int]) -> Evaluation:
    """One ranker's fits with different seeds (`seeds[i]` for `evaluations[i]`) as one row of means.

    A trained ranker's metrics move with its seed, by as much as two rankers differ (ModelLens's τw top on
    new_dataset's val part spans 0.766-0.769 over three seeds): a lead is a lead of the mean, and the row keeps
    every fit so its spread can be read.
    """
    first = evaluations[0]
    if len(evaluations) == 1:
        return first

    def mean(rows: Sequence[dict[str, float]]) -> dict[str, float]:
        return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}

    labels = first.breakdown.keys()
    return Evaluation(
        ranker=first.ranker,
        split=first.split,
        part=first.part,
        metrics=mean([e.metrics for e in evaluations]),
        fit_seconds=round(float(np.mean([e.fit_seconds for e in evaluations])), 2),
        score_seconds=round(float(np.mean([e.score_seconds for e in evaluations])), 2),
        breakdown={label: mean([e.breakdown[label] for e in evaluations]) for label in labels},
        per_seed={str(seed): e.metrics for seed, e in zip(seeds, evaluations, strict=True)},
    )


def seed_spread(evaluation: dict, key: str = "wtau_top") -> float:
    """Standard deviation (ddof 1) of one metric over a row's seeds; NaN for a single fit."""
    values = [metrics[key] for metrics in evaluation.get("per_seed", {}).values()]
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


RETRIEVAL_GROUPS = 300
"""Groups per evaluation whose query also scores the whole model pool (pool Hit@K): a seeded sample, because
scoring 17K models costs a heavy ranker ~0.1 s per query and the completion split has thousands of groups."""


def retrieval_sample(groups: np.ndarray, size: int = RETRIEVAL_GROUPS) -> np.ndarray:
    """The seeded, ranker-independent sample of `groups` evaluated for full-pool retrieval."""
    if len(groups) <= size:
        return groups
    return np.sort(np.random.default_rng(0).choice(groups, size, replace=False))


def held_out_groups(parts: SplitParts, part: str = "test") -> np.ndarray:
    """Ids of the groups evaluated: at least two held-out models with distinct values."""
    corpus = getattr(parts, part)
    return corpus.groups.index[corpus.groups["trainable"]].to_numpy()


def evaluate(
    ranker: Ranker,
    parts: SplitParts,
    split: str,
    part: str = "test",
    ks: Sequence[int] = KS,
    progress: bool = False,
    by: str | None = None,
) -> Evaluation:
    """Fit `ranker` on the training part and score every held-out group of `part`.

    With `by` (a column of `groups`, e.g. `"task"`), the metrics are also summarised per value of that column: a
    ranker that is better overall can still be worse on one domain.
    """
    started = time.perf_counter()
    ranker.fit(parts.train)
    fitted = time.perf_counter()
    held = getattr(parts, part)
    pool = np.arange(len(held.models))
    by_group = held.records.sort_values(["group_id", "model_id"]).groupby("group_id")
    groups = held_out_groups(parts, part)
    retrieval = set(retrieval_sample(groups))
    results: list[GroupMetrics] = []
    for group_id in track(groups, description=f"{ranker.name:>22} {split}", disable=not progress):
        rows = by_group.get_group(group_id)
        candidates = rows["model_id"].to_numpy()
        gt = rows["value"].to_numpy()
        query = Query.for_group(held.groups, group_id)
        if group_id in retrieval:
            pool_scores = np.asarray(ranker.score(query, pool), dtype=float)
            best = int(candidates[np.argmax(gt)])
            results.append(score_group(gt, pool_scores[candidates], ks, pool_scores=pool_scores, best_in_pool=best))
        else:
            results.append(score_group(gt, np.asarray(ranker.score(query, candidates), dtype=float), ks))
    breakdown = {}
    if by is not None:
        labels = held.groups.loc[groups, by].astype(str).to_numpy()
        for label in sorted(set(labels)):
            breakdown[label] = summarize([r for r, mine in zip(results, labels == label, strict=True) if mine], ks)
    return Evaluation(
        ranker=ranker.name,
        split=split,
        part=part,
        metrics=summarize(results, ks),
        fit_seconds=round(fitted - started, 2),
        score_seconds=round(time.perf_counter() - fitted, 2),
        breakdown=breakdown,
    )


_COLUMNS = (
    ("wtau_top", "τw top"),
    ("wtau_official", "τw official"),
    ("wtau_top_mean", "τw top (group mean)"),
    ("ndcg@1", "NDCG@1"),
    ("ndcg@10", "NDCG@10"),
    ("ndcg@30", "NDCG@30"),
    ("ndcg@50", "NDCG@50"),
    ("hit@1", "Hit@1"),
    ("hit@10", "Hit@10"),
    ("hit@30", "Hit@30"),
    ("hit@50", "Hit@50"),
    ("rec@1", "Rec@1"),
    ("rec@10", "Rec@10"),
    ("rec@30", "Rec@30"),
    ("rec@50", "Rec@50"),
    ("regret@1", "regret@1 ↓"),
    ("rhit@1", "pool Hit@1"),
    ("rhit@10", "pool Hit@10"),
    ("rhit@50", "pool Hit@50"),
)


def record_results(
    path: Path, split: str, evaluations: Sequence[Evaluation], info: dict[str, object]
) -> dict[str, object]:
    """Merge one split's results into the JSON report at `path` and return the report.

    Other splits, and other rankers of the same split on the same corpus, are kept, so rankers can be evaluated in
    separate runs; every command that contributed is listed.
    """
    report = json.loads(path.read_text()) if path.is_file() else {}
    previous = report.get(split, {})
    if previous.get("corpus_fingerprint") != info.get("corpus_fingerprint"):
        previous = {}  # results on another corpus are not comparable: start the split afresh
    commands = [*previous.get("commands", []), info["command"]]
    rankers = previous.get("rankers", {}) | {e.ranker: asdict(e) for e in evaluations}
    report[split] = previous | info | {"commands": list(dict.fromkeys(commands)), "rankers": rankers}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    return report


def markdown_table(evaluations: Sequence[dict]) -> str:
    """A markdown table: rows are rankers, columns the metrics (best value per column in bold)."""
    header = "| ranker | " + " | ".join(title for _, title in _COLUMNS) + " | τw top sd (seeds) | fit s |"
    rule = "|---|" + "---:|" * (len(_COLUMNS) + 2)
    best = {}
    for key, _ in _COLUMNS:
        values = [e["metrics"].get(key, float("nan")) for e in evaluations]
        finite = [v for v in values if np.isfinite(v)]
        if finite:
            best[key] = min(finite) if key == "regret@1" else max(finite)
    lines = [header, rule]
    for e in evaluations:
        cells = []
        for key, _ in _COLUMNS:
            value = e["metrics"].get(key, float("nan"))
            text = "–" if not np.isfinite(value) else f"{value:.3f}"
            cells.append(f"**{text}**" if np.isfinite(value) and value == best.get(key) else text)
        spread = seed_spread(e)
        cells.append("–" if not np.isfinite(spread) else f"{spread:.4f} ({len(e['per_seed'])})")
        lines.append(f"| {e['ranker']} | " + " | ".join(cells) + f" | {e['fit_seconds']:.1f} |")
    return "\n".join(lines)


def quality_markdown(report: dict[str, dict]) -> str:
    """The whole quality report: one section per split, in the canonical split order."""
    from lens.splits import SPLITS

    out = [
        "# Ranking quality on held-out data",
        "",
        "Written by `modellens evaluate`; do not edit by hand. Metrics as in spec section 4.4, with stable",
        "tie-breaking: τw top is the top-weighted Kendall τ (pair-count weighted over groups), τw official the",
        "bottom-weighted variant of the official code, pool Hit@K whether the group's true best model is in the top K",
        "of the *whole* model pool, regret@1 the normalised gap between the best value and the value of the predicted",
        "top-1 (lower is better). A row fitted with several ranker seeds (`--ranker-seeds`) shows their mean, and the",
        "standard deviation of its τw top over them.",
    ]
    for split in [s for s in SPLITS if s in report] + [s for s in report if s not in SPLITS]:
        section = report[split]
        rankers = list(section["rankers"].values())
        groups = int(rankers[0]["metrics"].get("groups", 0)) if rankers else 0
        out += [
            "",
            f"## `{split}`",
            "",
            *(f"- command: `{command}`" for command in section.get("commands", [])),
            f"- corpus {section.get('corpus_fingerprint', '?')}: {section.get('corpus', '')}",
            f"- held-out groups evaluated: {groups}; model pool: {section.get('pool', '?')} "
            f"(pool Hit@K on a seeded sample of {min(groups, RETRIEVAL_GROUPS)} groups)",
            f"- wall time of the last run: {section.get('wall_seconds', '?')} s on {section.get('machine', '?')}",
            "",
            markdown_table(rankers),
        ]
    return "\n".join(out) + "\n"
