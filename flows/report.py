"""The written reports of a training run: the quality table, the per-task breakdown and the split manifest.

The quality table is the one `modellens evaluate` writes (`lens.evaluate`), so a retrain's numbers read like the
benchmark's. The split manifest lists the held-out families: `modellens evaluate --split split.json --corpus <snapshot>`
reproduces the evaluation outside the flow.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from flows.gate import REPORTED
from lens.corpus import Corpus
from lens.evaluate import Evaluation, quality_markdown, record_results
from lens.splits import Split

PER_TASK_COLUMNS = ("groups", *REPORTED)
"""Columns of the per-task Markdown table: the metrics a promotion decision reports (the CSV has them all)."""


def write_quality(
    directory: Path, evaluations: Sequence[Evaluation], split: Split, corpus: Corpus, command: str, seconds: float
) -> Path:
    """`quality.json` and `quality.md` in `directory`; returns the Markdown path."""
    info = {
        "command": command,
        "wall_seconds": round(seconds, 1),
        "corpus_fingerprint": corpus.fingerprint,
        "corpus": ", ".join(f"{k} {v:,}" for k, v in corpus.summary().items()),
        "pool": len(corpus.models),
        "held_out_families": len(split.test.items),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    report = record_results(directory / "quality.json", split.name, evaluations, info)
    path = directory / "quality.md"
    path.write_text(quality_markdown(report))
    return path


def per_task(evaluations: Sequence[Evaluation]) -> pd.DataFrame:
    """One row per (ranker, task) with every metric."""
    rows = [{"ranker": e.ranker, "task": task, **metrics} for e in evaluations for task, metrics in e.breakdown.items()]
    return pd.DataFrame(rows).sort_values(["task", "ranker"], ignore_index=True)


def write_per_task(directory: Path, evaluations: Sequence[Evaluation]) -> Path:
    """`per_task.csv` (every metric) and `per_task.md` (tasks x rankers, the main metrics); returns the CSV path."""
    table = per_task(evaluations)
    path = directory / "per_task.csv"
    table.to_csv(path, index=False)
    wide = table.pivot(index="task", columns="ranker", values=list(PER_TASK_COLUMNS[1:]))
    wide.columns = [f"{ranker} {metric}" for metric, ranker in wide.columns]
    groups = table.drop_duplicates("task").set_index("task")["groups"].astype(int)
    wide.insert(0, "groups", groups)
    (directory / "per_task.md").write_text("# Held-out metrics per task\n\n" + _markdown(wide.reset_index()) + "\n")
    return path


def _markdown(frame: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
