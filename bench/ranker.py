"""Benchmark: ModelLens training on the full corpus and recommendation latency at 17K and 50K models.

Run: `OMP_NUM_THREADS=$(nproc) .venv/bin/python bench/ranker.py [CORPUS_DIR]` (as `make bench` does: the
training target is for every core); trains a bundle under $MODELLENS_HOME/models/bench as
`modellens train` does, a selection run and then one refit per committee member (targets: under 15 minutes in all;
p50 < 20 ms for one query over ~17K models and < 50 ms over 50K, in process on 2 cores), then writes
bench/results/ranker.md. Latency excludes embedding the query's description (a cached text, as for a repeated
query); that cost is measured separately on fresh texts.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from lens.bundle import save_bundle
from lens.corpus import load_corpus
from lens.embeddings import Embedder
from lens.evaluate import threads_env
from lens.model import ModelFeatures
from lens.rankers import Query
from lens.recommender import Recommender
from lens.settings import Settings
from lens.training import LensConfig, hold_out_benchmarks, train_selected

QUERIES = 200
TARGET_MS = {True: 20, False: 50}
"""p50 targets: the known pool (~17K models), and the 50K-model pool."""


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _latency(recommender: Recommender, queries: list[Query]) -> tuple[float, float]:
    recommender.embedder.encode([q.text for q in queries])  # cached: measure the ranking, not the encoder
    seconds = []
    for query in queries:
        started = time.perf_counter()
        scores = recommender.pool_scores(query)
        np.argpartition(-scores, 10)[:10]
        seconds.append(time.perf_counter() - started)
    return _percentiles(seconds)


def main() -> None:
    settings = Settings()
    corpus_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else settings.corpus
    corpus = load_corpus(corpus_dir)
    embedder = Embedder(settings.encoder, settings.cache_dir)
    embedder.encode(list(corpus.groups["text"]) + list(corpus.models["text"]))
    config = LensConfig()
    train_part, val_part = hold_out_benchmarks(corpus, config.training.validation_fraction, settings.seed)
    train_threads = torch.get_num_threads()
    started = time.perf_counter()
    selection, trained = train_selected(corpus, embedder, config, settings.seed)  # holds out the same families
    train_seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    bundle = save_bundle(settings.home / "models" / "bench", trained, corpus, embedder, config)

    recommender = Recommender.load(bundle, settings.cache_dir)
    groups = corpus.groups[corpus.groups["n_models"] > 0].sample(QUERIES, random_state=0)
    queries = [Query(r.dataset, r.task, r.metric, r.description) for r in groups.itertuples()]
    pool = recommender.bundle.pool
    # A 50K-model pool: the known pool three times over (the per-query cost depends only on the pool size).
    big = ModelFeatures(
        *(torch.cat([getattr(pool, f)] * 3) for f in ("id_index", "name_tokens", "text", "size_bucket", "family"))
    )
    with torch.no_grad():
        sides = {len(pool): recommender.side, len(big): recommender.bundle.model.model_side(big)}
    index = recommender.neighbours
    evidence = {
        len(pool): (index.z, index.seen, index.priors),
        len(big): (*(sp.hstack([m] * 3).tocsr() for m in (index.z, index.seen)), np.tile(index.priors, (1, 3))),
    }
    latency = {}
    for threads in sorted({1, os.cpu_count() or 1}):  # one replica per core, or one replica on every core
        torch.set_num_threads(threads)
        for size, side in sides.items():
            recommender.side = side
            index.z, index.seen, index.priors = evidence[size]  # the replicas have the records of their originals
            latency[size, threads] = _latency(recommender, queries)

    torch.set_num_threads(1)
    fresh = [f"benchmark {i}: a new dataset about topic {i} for evaluation" for i in range(50)]
    encode = []
    for text in fresh:
        started = time.perf_counter()
        embedder.encode([text + f" {time.time()}"])
        encode.append(time.perf_counter() - started)
    enc_p50, enc_p99 = _percentiles(encode)

    epochs = selection.history
    members = len(trained.model.members)
    lines = [
        "# ModelLens ranker: training and recommendation speed",
        "",
        f"- command: `{threads_env()}.venv/bin/python bench/ranker.py {corpus_dir}`",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"training on {train_threads} torch threads",
        f"- corpus {corpus.fingerprint}: the selection run trains on {len(train_part.records):,} records and "
        f"selects on {len(val_part.records):,} (held-out benchmark families); the refits train on all "
        f"{len(corpus.records):,}",
        "",
        "| training | value |",
        "|---|---:|",
        f"| selection run: epochs (patience {config.training.patience}) | {len(epochs)} |",
        f"| selected epoch | {selection.best_epoch} (val τw {epochs[selection.best_epoch - 1].val_tau:.3f}) |",
        f"| selection run: seconds per epoch (median) | {np.median([e.seconds for e in epochs]):.1f} |",
        f"| refits on everything: members x epochs | {members} x {len(trained.history)} |",
        f"| refit: seconds per epoch (median) | {np.median([e.seconds for e in trained.history]):.1f} |",
        f"| total training s, selection and refits (target 900) | {train_seconds:.0f} |",
        f"| total / target | {train_seconds / 900:.2f} |",
        f"| peak RSS MiB | {peak_mib:.0f} |",
        "",
        f"| recommendation latency, {QUERIES} queries, in process | torch threads | p50 ms | p99 ms | target p50 ms "
        "| p50 / target |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {size:,} models | {threads} | {p50:.1f} | {p99:.1f} | {TARGET_MS[size == len(pool)]} "
            f"| {p50 / TARGET_MS[size == len(pool)]:.2f} |"
            for (size, threads), (p50, p99) in latency.items()
        ),
        f"| embedding one new description (not included above) | 1 | {enc_p50:.1f} | {enc_p99:.1f} | | |",
        "",
        f"Machine load (1-minute average) when the latency was measured: {os.getloadavg()[0]:.2f} on {os.cpu_count()} "
        "cores; other jobs on the machine inflate these numbers.",
    ]
    out = Path(__file__).parent / "results" / "ranker.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
