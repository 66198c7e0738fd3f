"""Does matrix factorisation's lead on the Open LLM Leaderboard groups of `new_dataset`'s test part show up elsewhere?

Run: `.venv/bin/python bench/llm_folds.py [CORPUS_DIR]` (about 20 minutes on 2 cores); writes
bench/results/llm_folds.md.

Why it exists: `quality_breakdown.md` shows that the test part's τw top is 94% seven Open LLM Leaderboard groups and
that the val part has none, so nothing chosen on val sees such a group. This check builds that kind of held-out part
from the split's train part alone, never touching its test part: each fold holds out one benchmark family of Open LLM
Leaderboard v1 that the train part still has, so the v1 models keep two records there, as they keep three when the
test part is held out. ModelLens, dataset-kNN and matrix factorisation are fitted on the rest exactly as
`modellens evaluate` fits them, and scored on the fold's groups.

`make bench` runs it with OMP_NUM_THREADS=1. The network's rows depend on the thread count: the float sums of
training run in another order, and on a fold that is one group of 6,795 models, the network alone moved from 0.72 to
0.80 τw top between 2 threads and 1. Read a single big group's difference between rankers with that in mind.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from quality_breakdown import score_part  # run as a script: bench/ is on the path

from lens.corpus import load_corpus
from lens.embeddings import Embedder
from lens.evaluate import threads_env
from lens.metrics import summarize
from lens.rankers import Context, make_ranker
from lens.settings import Settings
from lens.splits import HeldOut, make_split

SPLIT = "new_dataset"
FOLDS = ("hellaswag", "truthfulqa")
"""Benchmark families held out one at a time: the Open LLM Leaderboard v1 families of the train part."""
METRICS = {"τw top": "wtau_top", "NDCG@10": "ndcg@10", "Hit@1": "hit@1", "regret@1 ↓": "regret@1"}


def _fold(parts, family: str, context: Context) -> list[str]:
    """One fold's table: fit on the train part without `family`, score that family's groups."""
    held_out = HeldOut("benchmark", (family,)).mask(parts.train)
    rest, held = parts.train.restrict(~held_out), parts.train.restrict(held_out)
    lens = make_ranker("modellens", context).fit(rest)
    baselines = {name: make_ranker(name, context).fit(rest) for name in ("dataset-knn", "matrix-factorisation")}
    rows = score_part("fold", SimpleNamespace(fold=held), lens, baselines)
    sizes = np.array([r["n"] for r in rows], dtype=float)
    pairs = sizes * (sizes - 1) / 2
    lines = [
        f"## `{family}` held out",
        "",
        f"- {len(rows)} groups, {pairs.sum():,.0f} pairs; the largest has {sizes.max():,.0f} models and "
        f"{pairs.max() / pairs.sum():.1%} of the pairs",
        f"- modellens = network alone + {lens.trained.model.config.evidence_weight:g} × evidence alone; the "
        "network's epochs selected on held-out families of the rest, as in `modellens evaluate`",
        "",
        "| ranker | " + " | ".join(METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for name in rows[0]["metrics"]:
        summary = summarize([r["metrics"][name] for r in rows])
        lines.append(f"| {name} | " + " | ".join(f"{summary[key]:.4f}" for key in METRICS.values()) + " |")
    return [*lines, ""]


def main() -> None:
    settings = Settings()
    corpus_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else settings.corpus
    corpus = load_corpus(corpus_dir)
    parts = make_split(corpus, SPLIT, settings.seed).partition(corpus)
    context = Context(Embedder(settings.encoder, settings.cache_dir), settings.seed)
    lines = [
        "# Open LLM Leaderboard folds of the `new_dataset` train part",
        "",
        f"- command: `{threads_env()}.venv/bin/python bench/llm_folds.py {corpus_dir}` (torch threads: the network's "
        "weights, and so its rows, change with their number)",
        f"- corpus {corpus.fingerprint}; split `{SPLIT}` seed {settings.seed}; machine {platform.machine()}, "
        f"{os.cpu_count()} cores",
        "",
    ]
    for family in FOLDS:
        lines += _fold(parts, family, context)
    out = Path(__file__).parent / "results" / "llm_folds.md"
    out.write_text("\n".join(lines))
    print(out.read_text())


if __name__ == "__main__":
    main()
