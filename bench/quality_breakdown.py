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
import torch

from lens.corpus import load_corpus
from lens.embeddings import Embedder
from lens.evaluate import held_out_groups
from lens.metrics import score_group, summarize
from lens.model import QueryFeatures
from lens.rankers import Context, Query, make_ranker
from lens.settings import Settings
from lens.splits import make_split
from lens.training import TrainingRecords

SPLIT = "new_dataset"
LARGEST = 8
"""Groups shown one by one: the test part's largest by pair count."""
BIG = 1000
"""Groups above this many models are left out of the "small groups" column."""
RESAMPLES = 2000


def _pairs(n: int) -> float:
    return n * (n - 1) / 2


class _Terms:
    """ModelLens's stacked score and its two terms for one query over the whole pool."""

    def __init__(self, ranker, embedder: Embedder, train):
        self.ranker, self.embedder = ranker, embedder
        trained = ranker.trained
        self.weight = trained.model.config.evidence_weight
        # Row order of the neighbour index: the groups of the training records, sorted (`NeighbourIndex.from_records`).
        self.index_groups = np.unique(TrainingRecords(train).frame["group_id"].to_numpy())

    @torch.no_grad()
    def __call__(self, query: Query) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        trained = self.ranker.trained
        model = trained.model
        vector = self.embedder.encode([query.text])
        features = QueryFeatures.build([query.group], [query.task], [query.metric], vector, trained.vocabulary)
        evidence = trained.evidence(vector, [query.task])[0]
        network = model.score_from_parts(self.ranker.side, model.query_side(features), torch.zeros_like(evidence))
        weights = trained.neighbours.weights(vector, [query.task]).near[0].toarray()[0]
        return network.numpy(), evidence[:, 0].numpy(), weights


def _score_part(part_name, parts, terms, baselines):
    """Per group of one part: its row (task, family, size) and `{ranker: GroupMetrics}`, plus its top neighbours."""
    held = getattr(parts, part_name)
    by_group = held.records.sort_values(["group_id", "model_id"]).groupby("group_id")
    rows, neighbours = [], {}
    for group_id in held_out_groups(parts, part_name):
        records = by_group.get_group(group_id)
        candidates, gt = records["model_id"].to_numpy(), records["value"].to_numpy()
        query = Query.for_group(held.groups, group_id)
        network, evidence, weights = terms(query)
        scores = {
            "modellens": network[candidates] + terms.weight * evidence[candidates],
            "network alone": network[candidates],
            "evidence alone": evidence[candidates],
        } | {name: ranker.score(query, candidates) for name, ranker in baselines.items()}
        metrics = {name: score_group(gt, np.asarray(s, dtype=float)) for name, s in scores.items()}
        group = held.groups.loc[group_id]
        rows.append({"group": group_id, "key": group["key"], "task": group["task"], "family": group["benchmark"]})
        rows[-1] |= {"n": len(gt), "metrics": metrics}
        top = np.argsort(-weights)[:3]
        neighbours[group_id] = [(terms.index_groups[i], weights[i]) for i in top if weights[i] > 0]
    return rows, neighbours


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
    total = sum(_pairs(r["n"]) for r in rows)
    by_task = pd.Series({r["task"]: 0.0 for r in rows})
    for r in rows:
        by_task[r["task"]] += _pairs(r["n"]) / total
    largest = sorted(rows, key=lambda r: -r["n"])[:LARGEST]
    tasks = ", ".join(f"{task} {share:.1%}" for task, share in by_task.sort_values(ascending=False).head(4).items())
    return [
        f"- {len(rows)} groups from {len({r['family'] for r in rows})} benchmark families, {total:,.0f} pairs",
        f"- pair share by task: {tasks}",
        f"- the {LARGEST} largest groups hold {sum(_pairs(r['n']) for r in largest) / total:.1%} of the pairs",
    ]


def _largest(rows, neighbours, groups, names) -> list[str]:
    total = sum(_pairs(r["n"]) for r in rows)
    lines = [
        "| group | models | pair share | " + " | ".join(names) + " | evidence read from (weight) |",
        "|---|---:|---:|" + "---:|" * len(names) + "---|",
    ]
    for r in sorted(rows, key=lambda r: -r["n"])[:LARGEST]:
        taus = [r["metrics"][name].wtau_top for name in names]
        best = max(taus)
        cells = " | ".join(f"**{t:.3f}**" if t == best else f"{t:.3f}" for t in taus)
        read = "; ".join(
            f"{groups.loc[g, 'source']}: {groups.loc[g, 'dataset']} ({w:.2f})" for g, w in neighbours[r["group"]]
        )
        key = r["key"].replace("|", " · ")  # a group key's separators would split the table's cells
        lines.append(f"| {key} | {r['n']:,} | {_pairs(r['n']) / total:.1%} | {cells} | {read} |")
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
    terms = _Terms(lens, embedder, parts.train)
    names = ["modellens", "network alone", "evidence alone", *baselines]

    lines = [
        "# Where ModelLens wins and loses on `new_dataset`",
        "",
        f"- command: `.venv/bin/python bench/quality_breakdown.py {corpus_dir}`",
        f"- corpus {corpus.fingerprint}; split `{SPLIT}` seed {settings.seed}; machine {platform.machine()}, "
        f"{os.cpu_count()} cores",
        f"- modellens = network alone + {terms.weight:g} × evidence alone (`ModelConfig.evidence_weight`). The CI "
        f"column is a paired bootstrap of the pooled τw top difference, {RESAMPLES} draws of the part's benchmark "
        "families with replacement.",
    ]
    test_rows = None
    for part in ("val", "test"):
        rows, neighbours = _score_part(part, parts, terms, baselines)
        lines += ["", f"## {part} part", "", *_where_the_pairs_are(rows), "", *_summary_table(rows, names)]
        if part == "test":
            test_rows, test_neighbours = rows, neighbours
    lines += [
        "",
        f"## The {LARGEST} largest test groups (τw top)",
        "",
        *_largest(test_rows, test_neighbours, parts.train.groups, names),
    ]
    out = Path(__file__).parent / "results" / "quality_breakdown.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
