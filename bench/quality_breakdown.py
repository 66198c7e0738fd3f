"""Where ModelLens wins and loses on the `new_dataset` split, and how sure the pooled τw comparison is.

Run: `.venv/bin/python bench/quality_breakdown.py [CORPUS_DIR]` (about 12 minutes on 2 cores); writes
bench/results/quality_breakdown.md. It fits ModelLens, dataset-kNN and matrix factorisation on the split's train
part, as `modellens evaluate` does, and scores the val and test groups with each, and with ModelLens's two terms
apart: the network alone and the neighbour evidence alone.

Why it exists: τw top is pair-count weighted (spec 4.3), so a group of 6,795 models weighs as much as 2,000 groups
of 100. The table of `quality.md` cannot show whether a difference rests on many groups or on a few. This report
shows where the pairs are, the largest groups one by one with the neighbours their evidence was read from, and a
paired bootstrap over benchmark families (the split's held-out unit) of the pooled τw difference.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from lens.corpus import load_corpus
from lens.embeddings import Embedder
from lens.evaluate import held_out_groups, threads_env
from lens.metrics import score_group, summarize
from lens.rankers import Context, Query, make_ranker
from lens.settings import Settings
from lens.splits import make_split

SPLIT = "new_dataset"
LARGEST = 8
"""Groups shown one by one: the test part's largest by pair count."""
BIG = 1000
"""Groups above this many models are left out of the "small groups" column."""
RESAMPLES = 2000


def _pairs(n: int) -> float:
    return n * (n - 1) / 2


def score_part(part_name: str, parts, lens, baselines) -> list[dict]:
    """One row per group of one part (`parts.<part_name>`): its key, task, family, size and `{ranker: GroupMetrics}`."""
    held = getattr(parts, part_name)
    weight = lens.trained.model.config.evidence_weight
    by_group = held.records.sort_values(["group_id", "model_id"]).groupby("group_id")
    rows = []
    for group_id in held_out_groups(parts, part_name):
        records = by_group.get_group(group_id)
        candidates, gt = records["model_id"].to_numpy(), records["value"].to_numpy()
        query = Query.for_group(held.groups, group_id)
        network, evidence, trust = lens.terms(query)
        network, evidence = network[candidates], evidence[candidates]
        scores = {
            "modellens": network + weight * trust * evidence,
            "network alone": network,
            "evidence alone": evidence,
        }
        scores |= {name: ranker.score(query, candidates) for name, ranker in baselines.items()}
        group = held.groups.loc[group_id]
        rows.append(
            {
                "group": group_id,
                "key": group["key"],
                "task": group["task"],
                "family": group["benchmark"],
                "n": len(gt),
                "metrics": {name: score_group(gt, np.asarray(s, dtype=float)) for name, s in scores.items()},
            }
        )
    return rows


def _bootstrap(rows, a: str, b: str, seed: int = 0) -> tuple[float, float, float]:
    """Pooled τw top of `a` minus `b`, resampling benchmark families: (2.5%, 97.5%, share of draws above 0)."""
    frame = pd.DataFrame(
        {
            "family": [r["family"] for r in rows],
            "pairs": [_pairs(r["n"]) for r in rows],
            "diff": [r["metrics"][a].wtau_top - r["metrics"][b].wtau_top for r in rows],
        }
    )
    frame["weighted"] = frame["pairs"] * frame["diff"]
    per_family = frame.groupby("family")[["weighted", "pairs"]].sum()
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(per_family), np.full(len(per_family), 1 / len(per_family)), size=RESAMPLES)
    draws = (counts @ per_family["weighted"].to_numpy()) / (counts @ per_family["pairs"].to_numpy())
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5)), float((draws > 0).mean())


def _summary_table(rows, names) -> list[str]:
    lines = [
        "| ranker | τw top | τw top, groups ≤ 1,000 models | τw top (group mean) | NDCG@10 | Hit@1 | regret@1 ↓ "
        "| τw top − modellens, 95% CI over families |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    small = [r for r in rows if r["n"] <= BIG]
    for name in names:
        m = summarize([r["metrics"][name] for r in rows])
        s = summarize([r["metrics"][name] for r in small])["wtau_top"] if small else float("nan")
        if name == "modellens":
            ci = ""
        else:
            low, high, above = _bootstrap(rows, name, "modellens")
            ci = f"[{low:+.3f}, {high:+.3f}]; above 0 in {above:.0%} of draws"
        lines.append(
            f"| {name} | {m['wtau_top']:.4f} | {s:.4f} | {m['wtau_top_mean']:.4f} | {m['ndcg@10']:.4f} "
            f"| {m['hit@1']:.4f} | {m['regret@1']:.4f} | {ci} |"
        )
    return lines


def _where_the_pairs_are(rows) -> list[str]:
    frame = pd.DataFrame({"task": [r["task"] for r in rows], "pairs": [_pairs(r["n"]) for r in rows]})
    total = frame["pairs"].sum()
    by_task = frame.groupby("task")["pairs"].sum().sort_values(ascending=False) / total
    largest = frame["pairs"].nlargest(LARGEST).sum() / total
    return [
        f"- {len(rows)} groups from {len({r['family'] for r in rows})} benchmark families, {total:,.0f} pairs",
        "- pair share by task: " + ", ".join(f"{task} {share:.1%}" for task, share in by_task.head(4).items()),
        f"- the {LARGEST} largest groups hold {largest:.1%} of the pairs",
    ]


def _largest(rows, lens, parts, names) -> list[str]:
    """The largest test groups one by one, with the known groups their neighbour evidence was read from."""
    total = sum(_pairs(r["n"]) for r in rows)
    index, known = lens.trained.neighbours, parts.train.groups
    lines = [
        "| group | models | pair share | " + " | ".join(names) + " | trust | evidence read from (weight) |",
        "|---|---:|---:|" + "---:|" * len(names) + "---:|---|",
    ]
    for r in sorted(rows, key=lambda r: -r["n"])[:LARGEST]:
        taus = [r["metrics"][name].wtau_top for name in names]
        cells = " | ".join(f"**{t:.3f}**" if t == max(taus) else f"{t:.3f}" for t in taus)
        query = Query.for_group(parts.test.groups, r["group"])
        weights = index.weights(lens.context.embedder.encode([query.text]), [query.task])
        near = weights.near[0].toarray()[0]
        top = np.argsort(-near)[:3]
        read = "; ".join(
            f"{known.loc[g, 'source']}: {known.loc[g, 'dataset']} ({w:.2f})"
            for g, w in zip(index.groups[top], near[top], strict=True)
            if w > 0
        )
        key = r["key"].replace("|", " · ")  # a group key's separators would split the table's cells
        lines.append(
            f"| {key} | {r['n']:,} | {_pairs(r['n']) / total:.1%} | {cells} | {weights.trust[0]:.2f} | {read} |"
        )
    return lines


def main() -> None:
    settings = Settings()
    corpus_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else settings.corpus
    corpus = load_corpus(corpus_dir)
    parts = make_split(corpus, SPLIT, settings.seed).partition(corpus)
    embedder = Embedder(settings.encoder, settings.cache_dir)
    context = Context(embedder, settings.seed)
    lens = make_ranker("modellens", context).fit(parts.train)
    baselines = {name: make_ranker(name, context).fit(parts.train) for name in ("dataset-knn", "matrix-factorisation")}
    names = ["modellens", "network alone", "evidence alone", *baselines]

    lines = [
        "# Where ModelLens wins and loses on `new_dataset`",
        "",
        f"- command: `{threads_env()}.venv/bin/python bench/quality_breakdown.py {corpus_dir}`",
        f"- corpus {corpus.fingerprint}; split `{SPLIT}` seed {settings.seed}; machine {platform.machine()}, "
        f"{os.cpu_count()} cores",
        f"- modellens = network alone + {lens.trained.model.config.evidence_weight:g} × trust × evidence alone "
        "(`ModelConfig.evidence_weight`; the trust of `lens.neighbours` comes from the nearest known group's "
        "similarity and is in the largest groups' table). "
        "The CI column is a paired bootstrap of the pooled τw top difference, "
        f"{RESAMPLES} draws of the part's benchmark families with replacement.",
    ]
    scored = {part: score_part(part, parts, lens, baselines) for part in ("val", "test")}
    for part, rows in scored.items():
        lines += ["", f"## {part} part", "", *_where_the_pairs_are(rows), "", *_summary_table(rows, names)]
    lines += [
        "",
        f"## The {LARGEST} largest test groups (τw top)",
        "",
        *_largest(scored["test"], lens, parts, names),
    ]
    out = Path(__file__).parent / "results" / "quality_breakdown.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
