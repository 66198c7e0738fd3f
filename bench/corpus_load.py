"""Benchmark: loading + normalising the full corpus (target: under 30 s on 2 cores).

Run: `.venv/bin/python bench/corpus_load.py [CORPUS_DIR]`; writes bench/results/corpus_load.md.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

from lens.corpus import load_corpus
from lens.settings import Settings

RUNS = 3
TARGET_SECONDS = 30.0


def main() -> None:
    corpus_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Settings().corpus
    seconds = []
    for _ in range(RUNS):
        started = time.perf_counter()
        corpus = load_corpus(corpus_dir)
        seconds.append(time.perf_counter() - started)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    median = statistics.median(seconds)
    summary = corpus.summary()
    lines = [
        "# Corpus load + normalise",
        "",
        f"- command: `.venv/bin/python bench/corpus_load.py {corpus_dir}`",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores; {RUNS} runs in one process",
        f"- corpus {corpus.fingerprint}: " + ", ".join(f"{k} {v:,}" for k, v in summary.items()),
        "",
        "| median s | min s | max s | target s | median / target | peak RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {median:.2f} | {min(seconds):.2f} | {max(seconds):.2f} | {TARGET_SECONDS:.0f} | "
        f"{median / TARGET_SECONDS:.2f} | {peak_mib:.0f} |",
    ]
    out = Path(__file__).parent / "results" / "corpus_load.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
