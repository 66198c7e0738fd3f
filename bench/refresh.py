"""Benchmark: the nightly refresh as `make refresh` runs it (the CLI in a fresh process, imports included).

Targets (issue 7): a full refresh from an empty home on the whole corpus (ingest + validate, train with epoch
selection and refit, evaluate ModelLens and the baselines on the held-out families, register, promote) under
20 minutes on this machine; a refresh that finds nothing new under 2 minutes.

Run: `.venv/bin/python bench/refresh.py [CORPUS_DIR] [--keep HOME]`; writes bench/results/refresh.md. Both runs use
one MODELLENS_HOME, empty at the start (the second finds the first's snapshot and registry; the embedding cache
starts empty too): a temporary one, or HOME with `--keep` (bench/serving.py can then load its champion).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lens.settings import Settings

TARGETS = {"full refresh from empty": 1200.0, "refresh with nothing new": 120.0}
RESULTS = Path(__file__).parent / "results" / "refresh.md"


def refresh(home: Path, corpus: Path, log: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, the process and the children it waited for) of one `modellens refresh`."""
    env = {**os.environ, "MODELLENS_HOME": str(home), "MODELLENS_CORPUS": str(corpus), "COLUMNS": "120"}
    env.setdefault("OMP_NUM_THREADS", "1")  # as `make refresh` runs it
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "serve.cli", "refresh"], env=env, stdout=out, stderr=out)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"`modellens refresh` failed ({status}); log: {log}")
    return seconds, usage.ru_maxrss / 1024


def main(corpus: Path, keep: Path | None) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-refresh-") as work:
        home = keep or Path(work) / "home"
        logs = home / "bench-logs" if keep else Path(work)
        if home.exists() and any(home.iterdir()):
            raise SystemExit(f"{home} is not empty: the benchmark starts from an empty home")
        for name in TARGETS:
            log = Settings.ensure(logs) / f"refresh-{len(rows) + 1}.log"
            seconds, peak = refresh(home, corpus, log)
            headline = next(
                (line.strip() for line in log.read_text().splitlines() if re.search(r"version \d|no new", line)), ""
            )
            rows.append((name, seconds, peak, headline))
            print(f"{name}: {seconds:.1f} s, peak {peak:.0f} MiB: {headline}", flush=True)
    lines = [
        "# Nightly refresh: wall time and peak memory",
        "",
        f"- command: `.venv/bin/python bench/refresh.py {corpus}` (each run is `modellens refresh` in a fresh process)",
        f"- corpus: {corpus}; one temporary MODELLENS_HOME for both runs, empty at the start",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, load average before {os.getloadavg()[0]:.2f}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}",
        "",
        "| run | wall s | target s | ratio | peak MiB | outcome |",
        "|---|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {name} | {seconds:.1f} | {TARGETS[name]:.0f} | {seconds / TARGETS[name]:.2f} | {peak:.0f} | {headline} |"
        for name, seconds, peak, headline in rows
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    kept = Path(arguments.pop(arguments.index("--keep") + 1)) if "--keep" in arguments else None
    if kept is not None:
        arguments.remove("--keep")
    main(Path(arguments[0]) if arguments else Settings().corpus, kept)
