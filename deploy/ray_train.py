"""Train ModelLens on a Ray cluster with Ray Train's `TorchTrainer`: the scale-out path.

`lens.training.train` is already correct data-parallel training under `torch.distributed`: it wraps the network in
`DistributedDataParallel`, so gradients are all-reduced every step, each rank takes a disjoint shard of the step's
lists, and every rank reaches the same weights and the same early-stopping decision. Ray Train only supplies the
workers and the process group (gloo on CPU); each worker runs `lens.training.train_selected` unchanged, and world
rank 0 writes the bundle and reports it as the run's checkpoint, which the driver copies to `--out`.

Locally (no `--address`) a private Ray instance is started on this machine's CPUs. On a real cluster pass
`--address` (e.g. `auto` on a cluster node) and a `--storage` path every node can reach (NFS or `s3://...`); the
corpus, this repository and the `lens` package must be present at the same paths on every node.

Ray stays outside `lens/` (the library never imports it): dependencies point one way, `deploy/` -> `lens/`.

    python -m deploy.ray_train --corpus ../shared/corpus --out .modellens/models/ray --workers 2
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import torch
import torch.distributed as dist
import typer

from lens.settings import Settings
from serve.local import private_token, temp_dir

log = logging.getLogger(__name__)

RUN_FILE = "ray_train.json"
"""Written into the bundle: how the distributed run went (world size, replica agreement, selected epoch)."""
for _name, _value in {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_name, _value)  # before Ray is imported: token auth (Ray's default), no telemetry


def _train_loop(loop: dict[str, Any]) -> None:
    """One Ray Train worker: the process group is up, so `train_selected` trains data-parallel."""
    import ray.train

    from lens.bundle import save_bundle
    from lens.corpus import load_corpus
    from lens.embeddings import Embedder
    from lens.training import LensConfig, train_selected

    torch.set_num_threads(1)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    corpus = load_corpus(Path(loop["corpus"]))
    embedder = Embedder(loop["encoder"], Path(loop["cache_dir"]))
    if rank == 0:  # embed new texts once into the cache, rather than on every worker at the same time
        embedder.encode(list(corpus.models["text"]) + list(corpus.groups["text"]))
    dist.barrier()
    config = LensConfig.from_dict(loop["config"])
    selection, final = train_selected(corpus, embedder, config, loop["seed"])

    # DDP keeps the replicas identical: check it, so a run that silently diverged cannot pass as a trained model.
    weights = torch.cat([t.detach().flatten().double() for t in final.model.state_dict().values()])
    high, low = weights.clone(), weights.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    metrics = {
        "best_epoch": selection.best_epoch,
        "epochs": len(selection.history),
        "val_tau": selection.history[selection.best_epoch - 1].val_tau,
        "final_epochs": len(final.history),
        "world_size": world,
        "process_group_size": dist.get_world_size(),
        "weight_spread": float((high - low).max()),
    }
    if rank != 0:
        ray.train.report(metrics)  # every worker reports as often as rank 0: `report` is a barrier
        return
    with tempfile.TemporaryDirectory() as directory:
        save_bundle(Path(directory), final, corpus, embedder, config)
        (Path(directory) / RUN_FILE).write_text(json.dumps(metrics, indent=1) + "\n")
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


def _start_ray(address: str | None, workers: int, settings: Settings) -> bool:
    """Connect to `address` or start a private local instance; True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    if address is not None:
        ray.init(address=address)
        return True
    private_token()
    ray.init(
        num_cpus=max(workers, os.cpu_count() or 1),
        include_dashboard=False,
        object_store_memory=200 * 1024**2,
        _temp_dir=str(temp_dir(settings)),  # the same private, socket-safe directory as `serve.local`
    )
    return True


def train_on_ray(
    corpus_dir: Path,
    out: Path,
    workers: int = 2,
    config: Path | None = None,
    seed: int | None = None,
    address: str | None = None,
    storage: str | None = None,
) -> Path:
    """Train on `corpus_dir` with `workers` Ray Train workers and write the bundle to `out`; returns `out`.

    `storage` is where Ray Train persists the run and its checkpoint (default: `<home>/ray-results`); on a cluster it
    must be reachable from every node.
    """
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from lens.training import LensConfig

    settings = Settings()
    lens_config = LensConfig.from_yaml(config) if config is not None else LensConfig()
    loop = {
        "corpus": str(Path(corpus_dir).absolute()),
        "encoder": settings.encoder,
        "cache_dir": str(settings.cache_dir.absolute()),
        "config": lens_config.to_dict(),
        "seed": settings.seed if seed is None else seed,
    }
    if storage is None:
        storage = str(Settings.ensure(settings.home.absolute() / "ray-results"))
    started = _start_ray(address, workers, settings)
    try:
        trainer = TorchTrainer(
            _train_loop,
            train_loop_config=loop,
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=False),
            run_config=RunConfig(storage_path=storage, name=f"modellens-{time.strftime('%Y%m%d-%H%M%S')}"),
        )
        result = trainer.fit()  # Ray Train V2 raises `TrainingFailedError` itself when a worker fails
        if result.error is not None:
            raise RuntimeError(f"Ray Train run failed: {result.error}") from result.error
        if result.checkpoint is None:
            raise RuntimeError(f"Ray Train run at {result.path} reported no checkpoint")
        out = Path(result.checkpoint.to_directory(str(out)))  # files are written over, like `modellens train`
        log.info("trained on %d Ray workers: %s -> %s", workers, result.metrics, out)
        return out
    finally:
        if started:
            ray.shutdown()


def main(
    corpus: Annotated[Path, typer.Option("--corpus", help="Corpus directory, the same path on every node.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the model bundle.")],
    workers: Annotated[int, typer.Option("--workers", min=1, help="Ray Train workers (one process each).")] = 2,
    config: Annotated[Path | None, typer.Option("--config", help="LensConfig YAML (default: built-in).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Training seed (default: settings.seed).")] = None,
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: local).")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="Ray Train storage shared by all nodes.")] = None,
) -> None:
    """Train ModelLens data-parallel with Ray Train and write a model bundle."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    bundle = train_on_ray(corpus, out, workers, config, seed, address, storage)
    typer.echo(f"wrote {bundle} ({(bundle / RUN_FILE).read_text().strip()})")


if __name__ == "__main__":
    typer.run(main)
