"""Benchmark: the recommendation API over HTTP on 127.0.0.1, as application developers meet it.

Targets (issue 6), over every known model of the full corpus's champion on 2 cores: `/recommend` p50 under 20 ms and
p99 under 100 ms at low concurrency (one client, one request at a time), at least 150 requests/s at saturation, and a
hot swap (a new champion promoted) under that load with 0 failed requests, with the p99 during the swap reported.
The load generator runs on the same machine (asyncio + aiohttp, one process), so it takes CPU from the service:
aiohttp because its client is lighter than httpx's, leaving more of the machine to the service.

Two kinds of traffic: 64 real dataset descriptions asked over and over (a replica embeds each once and keeps the
vector), and descriptions never seen before (every request pays for the text encoder as well as the ranking).

Run after a full refresh left a champion (`make refresh`, or `bench/refresh.py --keep HOME`):
`MODELLENS_HOME=HOME .venv/bin/python bench/serving.py`; writes bench/results/serve.md. Every request goes to loopback
and every phase is bounded in requests and seconds.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import pandas as pd

from flows import environment, registry, tracking
from lens.settings import Settings

RESULTS = Path(__file__).parent / "results" / "serve.md"
SEQUENTIAL = 300
SATURATION = {"concurrency": 16, "requests": 1500, "seconds": 60}
ROUNDS = 3
"""Saturation rounds per kind of traffic: on this machine's 2 shared cores req/s varies by about 10% run to run."""
SWAP = {"concurrency": 16, "requests": 4000, "seconds": 90}  # the saturation load, repeated descriptions


class Bodies:
    """`/recommend` bodies (k = 10) from real dataset descriptions of the corpus: repeated, or each one new."""

    def __init__(self, settings: Settings, fresh: bool, count: int = 64):
        datasets = pd.read_csv(settings.corpus / "datasets.csv").dropna(subset=["description"])
        self.texts = [str(d)[:3900] for d in datasets.sample(min(count, len(datasets)), random_state=0)["description"]]
        self.fresh, self.served = fresh, 0

    def __getitem__(self, i: int) -> dict:
        text = self.texts[i % len(self.texts)]
        if self.fresh:
            self.served += 1
            text = f"{text} (request {self.served} of {time.time_ns()})"  # never seen: the encoder runs
        return {"description": text, "k": 10}


async def load(url: str, bodies: Bodies, concurrency: int, requests: int, seconds: float) -> pd.DataFrame:
    """`requests` POSTs from `concurrency` clients (or fewer when `seconds` run out): start, latency, version, ok."""
    rows: list[tuple[float, float, str, bool]] = []
    deadline = time.perf_counter() + seconds
    counter = iter(range(requests))

    async def client(http: aiohttp.ClientSession) -> None:
        for i in counter:
            if time.perf_counter() > deadline:
                return
            started = time.perf_counter()
            try:
                async with http.post(f"{url}/recommend", json=bodies[i]) as response:
                    answer = await response.json()
                ok, version = response.status == 200, answer.get("model_version", "")
            except (TimeoutError, aiohttp.ClientError):
                ok, version = False, ""
            rows.append((started, time.perf_counter() - started, version, ok))

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return pd.DataFrame(rows, columns=["start", "seconds", "version", "ok"])


def summary(frame: pd.DataFrame, wall: float) -> dict[str, float]:
    ms = frame["seconds"].to_numpy() * 1000
    return {
        "requests": len(frame),
        "failed": int((~frame["ok"]).sum()),
        "p50 ms": float(np.percentile(ms, 50)),
        "p99 ms": float(np.percentile(ms, 99)),
        "req/s": len(frame) / wall,
    }


async def swap(url: str, bodies: Bodies, settings: Settings) -> tuple[dict[str, float], dict[str, float], str]:
    """Promote a new version (the champion's model registered again) under load; whole run and swap window."""
    client = tracking.connect(settings)
    name = settings.registered_model
    old = client.get_model_version(name, str(registry.aliases(client, name)[registry.CHAMPION]))
    new = client.create_model_version(name, old.source, run_id=old.run_id, tags=old.tags)
    started = time.perf_counter()
    running = asyncio.create_task(load(url, bodies, SWAP["concurrency"], SWAP["requests"], SWAP["seconds"]))
    await asyncio.sleep(5)
    promoted = time.perf_counter()
    registry.promote(client, name, int(new.version), {"promotion.decision": "manual", "promotion.by": "bench"})
    frame = await running
    wall = time.perf_counter() - started
    switched = frame.loc[frame["version"] == str(new.version), "start"].min()
    window = frame[(frame["start"] >= promoted) & (frame["start"] <= switched + 2)]
    registry.promote(client, name, int(old.version), {"promotion.decision": "manual", "promotion.by": "bench"})
    note = f"version {old.version} -> {new.version}: first answer from the new one {switched - promoted:.1f} s after"
    return summary(frame, wall), summary(window, max(switched + 2 - promoted, 1e-9)), note


async def measure(url: str, settings: Settings) -> list[tuple[str, dict[str, float], str]]:
    results = []
    repeated, fresh = Bodies(settings, fresh=False), Bodies(settings, fresh=True)
    await load(url, repeated, 2, 128, 60)  # warm up: lazy imports, allocations, and the repeated set's vectors
    for kind, bodies in (("repeated descriptions", repeated), ("new descriptions", fresh)):
        started = time.perf_counter()
        frame = await load(url, bodies, 1, SEQUENTIAL, 120)
        results.append((f"low concurrency (1 client), {kind}", summary(frame, time.perf_counter() - started), ""))
        rounds = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            frame = await load(url, bodies, **SATURATION)
            rounds.append(summary(frame, time.perf_counter() - started))
        rounds.sort(key=lambda r: r["req/s"])
        phase = f"saturation ({SATURATION['concurrency']} clients), {kind}: the median of {ROUNDS} rounds"
        results.append((phase, rounds[ROUNDS // 2], "rounds: " + " / ".join(f"{r['req/s']:.1f}" for r in rounds)))
    whole, window, note = await swap(url, repeated, settings)
    results.append(
        (f"hot swap under saturation ({SWAP['concurrency']} clients, repeated descriptions), whole run", whole, note)
    )
    results.append(("hot swap: the swap window (promotion to 2 s after the first new answer)", window, ""))
    return results


def main() -> None:
    settings = Settings()
    environment.apply(settings)
    from serve import local

    load_before = os.getloadavg()[0]
    url = local.start(settings)
    try:
        version = httpx.get(f"{url}/version", timeout=30).json()
        results = asyncio.run(measure(url, settings))
    finally:
        local.stop()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    lines = [
        "# Serving: latency, throughput and a hot swap over HTTP on 127.0.0.1",
        "",
        f"- command: `MODELLENS_HOME={settings.home} .venv/bin/python bench/serving.py` "
        "(after `bench/refresh.py --keep`)",
        f"- served: version {version['model_version']} of `{settings.registered_model}` (@{version['alias']}, "
        f"snapshot {version['snapshot']}), every request over all {version['known_models']:,} known models, k = 10, "
        "real dataset descriptions",
        f"- deployment as `modellens serve` runs it ({settings.serve_replicas} replicas of 1 CPU, Serve's "
        f"throughput mode behind its HAProxy ingress, OMP_NUM_THREADS={threads}); load generator on the same "
        "machine (asyncio + aiohttp, one process)",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, load average {load_before:.2f} before the service "
        f"started, {os.getloadavg()[0]:.2f} at the end (anything else running takes cores from the service)",
        "",
        "| phase | requests | failed | p50 ms | p99 ms | req/s | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for phase, numbers, note in results:
        lines.append(
            f"| {phase} | {numbers['requests']} | {numbers['failed']} | {numbers['p50 ms']:.1f} | "
            f"{numbers['p99 ms']:.1f} | {numbers['req/s']:.1f} | {note} |"
        )
        print(phase, {k: round(v, 1) for k, v in numbers.items()}, note, flush=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
