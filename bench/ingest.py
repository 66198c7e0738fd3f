"""Benchmark: ingest + validate into the record store, timed as a user runs it (the CLI, imports included).

Targets (issue 4): the whole corpus from an empty store, ingest + validate, under 60 s; a re-run with no new input
under 10 s. Also measured: a nightly drop (one new LiveBench-sized release) onto the full store, and ingest + validate
at the public ModelLens corpus's scale (~2M records: five renamed copies of the corpus in the public layout), which
must fit in memory and take minutes.

Run: `OMP_NUM_THREADS=1 .venv/bin/python bench/ingest.py [CORPUS_DIR]`; writes bench/results/ingest.md. Every step
runs in a fresh process against a temporary MODELLENS_HOME.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from lens.settings import Settings

SCALE_COPIES = 5
TARGETS = {"ingest + validate, empty store": 60.0, "re-run, no new input": 10.0, "scale: ingest + validate": 600.0}


def run(command: list[str], home: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `modellens` command in a fresh process."""
    env = {**os.environ, "MODELLENS_HOME": str(home), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "lens.cli", *command], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"`modellens {' '.join(command)}` failed ({status})")
    return seconds, usage.ru_maxrss / 1024


def next_release(corpus: Path, out: Path) -> Path:
    """The latest LiveBench release under a new date: a realistic nightly drop of new keys."""
    latest = sorted((corpus / "records").glob("livebench-*.csv.gz"))[-1]
    frame = pd.read_csv(latest)
    frame["dataset"] = frame["dataset"].str.replace(r"^LiveBench-[0-9-]+/", "LiveBench-2099-01-01/", regex=True)
    path = out / "livebench-2099-01-01.csv"
    frame.to_csv(path, index=False)
    return path


def public_layout_at_scale(corpus: Path, out: Path) -> tuple[Path, int]:
    """A public-layout data.csv of SCALE_COPIES renamed copies of every corpus record (~2M rows)."""
    records = pd.concat(pd.read_csv(p) for p in sorted((corpus / "records").glob("*.csv.gz")))
    copies = [
        records.assign(dataset=records["dataset"] + f" (copy {k})", task=records["task"], dataset_desp="")
        for k in range(SCALE_COPIES)
    ]
    data = pd.concat(copies, ignore_index=True)[["task", "dataset", "model", "metric", "value", "dataset_desp"]]
    folder = out / "public"
    folder.mkdir()
    data.to_csv(folder / "data.csv", index=False)
    return folder, len(data)


def main() -> None:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else Settings().corpus
    rows = f"{sum(len(pd.read_csv(p)) for p in (corpus / 'records').glob('*.csv.gz')):,} records"
    results = []  # (step, data, seconds, peak MiB)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        home, scale_home = work / "home", work / "scale"
        ingest_s, ingest_mib = run(["ingest", str(corpus)], home)
        validate_s, validate_mib = run(["validate"], home)
        results += [
            ("ingest, empty store", rows, ingest_s, ingest_mib),
            ("validate the snapshot", rows, validate_s, validate_mib),
            ("ingest + validate, empty store", rows, ingest_s + validate_s, max(ingest_mib, validate_mib)),
            ("re-run, no new input", "every file skipped by hash", *run(["ingest", str(corpus)], home)),
        ]
        drop = next_release(corpus, work)
        results.append(
            (
                "nightly drop onto the full store",
                f"{len(pd.read_csv(drop)):,} new records",
                *run(["ingest", str(drop)], home),
            )
        )
        store_mib = sum(f.stat().st_size for f in (home / "store").rglob("*") if f.is_file()) / 2**20
        folder, scale_rows = public_layout_at_scale(corpus, work)
        scale_ingest_s, scale_ingest_mib = run(["ingest", str(folder)], scale_home)
        scale_validate_s, scale_validate_mib = run(["validate"], scale_home)
        scale = f"{scale_rows:,} records"
        results += [
            ("scale: ingest, empty store", scale, scale_ingest_s, scale_ingest_mib),
            (
                "scale: ingest + validate",
                scale,
                scale_ingest_s + scale_validate_s,
                max(scale_ingest_mib, scale_validate_mib),
            ),
        ]
    lines = [
        "# Ingest + validate into the record store",
        "",
        f"- command: `OMP_NUM_THREADS=1 .venv/bin/python bench/ingest.py {corpus}`",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, shared with other jobs; each step is one "
        "`modellens` process (Python, pandas and Great Expectations imports included)",
        f"- store after the full corpus and the nightly drop: {store_mib:.1f} MiB on disk",
        f"- scale: {SCALE_COPIES} renamed copies of every corpus record in the public layout (the public corpus "
        "has ~1.8M records)",
        "",
        "| step | data | seconds | target s | seconds / target | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for step, data, seconds, mib in results:
        target = TARGETS.get(step)
        ratio = f"{seconds / target:.2f}" if target else ""
        lines.append(f"| {step} | {data} | {seconds:.1f} | {f'{target:.0f}' if target else ''} | {ratio} | {mib:.0f} |")
    out = Path(__file__).parent / "results" / "ingest.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
