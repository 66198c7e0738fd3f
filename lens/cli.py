"""The `modellens` command line: inspect the corpus, make splits, embed texts, evaluate rankers."""

from __future__ import annotations

import logging
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import track
from rich.table import Table

from lens.rankers import Query
from lens.settings import Settings

app = typer.Typer(
    name="modellens",
    help="Recommend pretrained models for datasets nobody has benchmarked, from public leaderboard records.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()

CorpusOption = Annotated[
    Path | None, typer.Option("--corpus", help="Corpus directory (default: $MODELLENS_CORPUS or ../shared/corpus).")
]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Split and ranker seed (default: settings.seed).")]


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )


def _load(corpus: Path | None, settings: Settings):
    from lens.corpus import load_corpus

    started = time.perf_counter()
    loaded = load_corpus(corpus or settings.corpus)
    return loaded, time.perf_counter() - started


@app.command("corpus")
def corpus_info(corpus: CorpusOption = None) -> None:
    """Load and normalise a corpus, and print what it holds."""
    settings = Settings()
    loaded, seconds = _load(corpus, settings)
    table = Table(title=f"corpus {corpus or settings.corpus} ({loaded.fingerprint})")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in loaded.summary().items():
        table.add_row(key, f"{value:,}")
    table.add_row("load + normalise (s)", f"{seconds:.1f}")
    console.print(table)
    if loaded.duplicates is not None:
        console.print(loaded.duplicates.describe())


@app.command("split")
def split_command(
    name: Annotated[str, typer.Argument(help="completion | new_dataset | new_model | family")],
    corpus: CorpusOption = None,
    seed: SeedOption = None,
    out: Annotated[Path | None, typer.Option(help="Manifest path (default: $MODELLENS_HOME/splits/).")] = None,
) -> None:
    """Draw a seeded split and write its manifest (reloadable with `--split PATH`)."""
    from lens.splits import make_split, manifest_path

    settings = Settings()
    loaded, _ = _load(corpus, settings)
    split = make_split(loaded, name, seed if seed is not None else settings.seed)
    path = split.save(out or manifest_path(settings.splits_dir, name, split.seed))
    parts = split.partition(loaded)
    console.print(
        f"[bold]{name}[/] seed {split.seed}: held out {len(split.val.items)} + {len(split.test.items)} "
        f"{split.test.unit}s; records train/val/test = {len(parts.train.records):,} / "
        f"{len(parts.val.records):,} / {len(parts.test.records):,}\nmanifest: {path}"
    )


@app.command("embed")
def embed_command(corpus: CorpusOption = None) -> None:
    """Embed every dataset and model text of the corpus into the on-disk cache."""
    from lens.embeddings import Embedder

    settings = Settings()
    loaded, _ = _load(corpus, settings)
    embedder = Embedder(settings.encoder, settings.cache_dir)
    before = embedder.cached
    texts = list(loaded.groups["text"]) + list(loaded.models["text"])
    embedder.encode(texts, progress=True)
    console.print(f"{len(texts):,} texts; {embedder.cached - before:,} newly embedded; cache {embedder.directory}")


@app.command("evaluate")
def evaluate_command(
    corpus: CorpusOption = None,
    split: Annotated[
        str, typer.Option(help="Split name, `all`, or a manifest path written by `modellens split`.")
    ] = "new_dataset",
    rankers: Annotated[str, typer.Option(help="Comma-separated ranker names, or `all`.")] = "all",
    seed: SeedOption = None,
    out_dir: Annotated[Path, typer.Option(help="Where quality.json and quality.md are written.")] = Path(
        "bench/results"
    ),
) -> None:
    """Fit rankers on a split's training part and print their metrics on its test part."""
    from lens.embeddings import Embedder
    from lens.evaluate import evaluate, markdown_table, quality_markdown, record_results
    from lens.rankers import Context, available, make_ranker
    from lens.splits import SPLITS, Split, make_split

    settings = Settings()
    loaded, _ = _load(corpus, settings)
    seed = seed if seed is not None else settings.seed
    context = Context(Embedder(settings.encoder, settings.cache_dir), seed)
    context.embedder.encode(list(loaded.groups["text"]) + list(loaded.models["text"]), progress=True)
    names = available() if rankers == "all" else [r.strip() for r in rankers.split(",") if r.strip()]
    names = [make_ranker(n, context).name for n in names]  # resolve aliases; fail on a typo before any work
    if split == "all":
        plans = [(s, make_split(loaded, s, seed)) for s in SPLITS]
    elif split in SPLITS:
        plans = [(split, make_split(loaded, split, seed))]
    else:
        manifest = Split.load(Path(split))
        plans = [(manifest.name, manifest)]
    command = "modellens " + shlex.join(sys.argv[1:])
    for name, plan in plans:
        started = time.perf_counter()
        parts = plan.partition(loaded)
        results = [evaluate(make_ranker(r, context), parts, name, progress=True) for r in names]
        console.print(f"\n[bold]{name}[/] (seed {plan.seed})")
        console.print(markdown_table([r.__dict__ for r in results]))
        info = {
            "command": command,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "corpus_fingerprint": loaded.fingerprint,
            "corpus": ", ".join(f"{k} {v:,}" for k, v in loaded.summary().items()),
            "pool": len(loaded.models),
            "seed": plan.seed,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        }
        report = record_results(out_dir / "quality.json", name, results, info)
        (out_dir / "quality.md").write_text(quality_markdown(report))
    console.print(f"\nwrote {out_dir / 'quality.md'}")


ModelOption = Annotated[Path, typer.Option("--model", help="Model bundle directory written by `modellens train`.")]


@app.command("train")
def train_command(
    out: Annotated[Path, typer.Option("--out", help="Bundle directory to write.")],
    corpus: CorpusOption = None,
    split: Annotated[
        str | None, typer.Option(help="Train on a split's train part (name or manifest path); default: everything.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (default: configs/modellens.yaml values).")] = None,
    seed: SeedOption = None,
) -> None:
    """Train ModelLens and write a self-contained bundle (safetensors weights, vocabularies, embeddings)."""
    from lens.bundle import save_bundle
    from lens.embeddings import Embedder
    from lens.splits import SPLITS, Split, make_split
    from lens.training import LensConfig, train, train_selected

    settings = Settings()
    loaded, _ = _load(corpus, settings)
    seed = seed if seed is not None else settings.seed
    lens_config = LensConfig.from_yaml(config) if config else LensConfig()
    embedder = Embedder(settings.encoder, settings.cache_dir)
    embedder.encode(list(loaded.groups["text"]) + list(loaded.models["text"]), progress=True)
    started = time.perf_counter()
    if split is None:  # everything, with the epoch count selected on held-out benchmark families (then a refit)
        selection, trained = train_selected(loaded, embedder, lens_config, seed)
        fitted = loaded
    else:  # a split's train part, selected on its val part
        manifest = make_split(loaded, split, seed) if split in SPLITS else Split.load(Path(split))
        parts = manifest.partition(loaded)
        val_part = parts.val if parts.val.groups["trainable"].any() else None
        if val_part is None:
            logging.getLogger(__name__).warning("no validation group to select on: training exactly max_epochs")
        selection = trained = train(parts.train, val_part, embedder, lens_config, seed)
        fitted = parts.train
    seconds = time.perf_counter() - started
    save_bundle(out, trained, fitted, embedder, lens_config)
    best = selection.history[selection.best_epoch - 1]
    refit = f", then {len(trained.history)} on everything" if trained is not selection else ""
    console.print(
        f"trained {len(selection.history)} epochs, selected epoch {selection.best_epoch} (val τw {best.val_tau:.3f})"
        f"{refit} in {seconds:.0f} s; bundle: {out}"
    )


def _query(dataset: str | None, description: str, task: str, metric: str) -> Query:
    return Query(dataset or "(new dataset)", task, metric, description)


@app.command("rank")
def rank_command(
    model: ModelOption,
    queries: Annotated[Path, typer.Option(help="JSONL: one query per line (id, dataset, description, task, ...).")],
    out: Annotated[Path, typer.Option(help="JSONL output: {id, scores: {model: score}} per query.")],
) -> None:
    """Batch ranking: score candidates (default: every known model) for each query in a JSONL file."""
    import json

    from lens.recommender import Recommender

    recommender = Recommender.load(model, Settings().cache_dir)
    lines = [line for line in queries.read_text().splitlines() if line.strip()]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as sink:
        for number, line in enumerate(track(lines, description="ranking", console=Console(stderr=True)), start=1):
            try:
                spec = json.loads(line)
                query = Query(
                    spec.get("dataset") or "(new dataset)",
                    spec.get("task") or "unknown",
                    spec.get("metric") or "unknown",
                    spec.get("description") or "",
                    spec.get("source") or "",
                    bool(spec.get("higher_is_better", True)),
                )
                scores = recommender.rank(query, spec.get("candidates"))
            except (json.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
                raise typer.BadParameter(f"{queries}:{number}: {exc}", param_hint="--queries") from exc
            sink.write(json.dumps({"id": str(spec.get("id", number)), "scores": scores}) + "\n")
    console.print(f"ranked {len(lines)} queries -> {out}")


DescriptionOption = Annotated[str, typer.Option(help="What the target dataset is: a sentence or two.")]
TaskOption = Annotated[str, typer.Option(help="Task type, e.g. 'Retrieval' (unknown tasks are fine).")]
MetricOption = Annotated[str, typer.Option(help="Metric, e.g. 'ndcg_at_10' (unknown metrics are fine).")]
DatasetOption = Annotated[str | None, typer.Option(help="Dataset name, if it has one.")]
MaxParamsOption = Annotated[
    float | None, typer.Option(help="Largest parameter count, e.g. 8e9 (unknown sizes excluded).")
]
LicenseOption = Annotated[list[str] | None, typer.Option("--license", help="Allowed license (repeatable).")]
FamilyOption = Annotated[list[str] | None, typer.Option("--family", help="Allowed family (repeatable).")]


@app.command("recommend")
def recommend_command(
    model: ModelOption,
    description: DescriptionOption,
    dataset: DatasetOption = None,
    task: TaskOption = "unknown",
    metric: MetricOption = "unknown",
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many models.")] = 10,
    max_params: MaxParamsOption = None,
    license: LicenseOption = None,
    family: FamilyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Recommend the top-k known models for a dataset, with the evidence behind each."""
    import json

    from lens.recommender import Recommender

    recommender = Recommender.load(model, Settings().cache_dir)
    query = _query(dataset, description, task, metric)
    picks = recommender.recommend(query, k, max_params, license or (), family or ())
    if as_json:
        print(json.dumps([p.to_dict() for p in picks], indent=1))
        return
    table = Table(title=f"top {k} for {query.dataset} ({query.task}, {query.metric})")
    for column in ("#", "model", "score", "params", "license", "evidence: nearest known datasets"):
        table.add_column(column, justify="right" if column in ("#", "score", "params") else "left")
    for i, p in enumerate(picks, start=1):
        params = "?" if p.n_parameters is None else f"{p.n_parameters / 1e9:.2g}B"
        evidence = "; ".join(f"{e.dataset} {e.metric} {e.value:.4g} (#{e.rank}/{e.of})" for e in p.evidence)
        table.add_row(str(i), p.model, f"{p.score:.3f}", params, p.license or "?", evidence or "none observed")
    console.print(table)


@app.command("pool")
def pool_command(
    model: ModelOption,
    description: DescriptionOption,
    dataset: DatasetOption = None,
    task: TaskOption = "unknown",
    metric: MetricOption = "unknown",
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Pool size.")] = 5,
    max_params: MaxParamsOption = None,
    license: LicenseOption = None,
    family: FamilyOption = None,
) -> None:
    """The top-K candidate pool for a router, as JSON."""
    import json

    from lens.recommender import Recommender

    recommender = Recommender.load(model, Settings().cache_dir)
    query = _query(dataset, description, task, metric)
    picks = recommender.recommend(query, k, max_params, license or (), family or ())
    print(json.dumps({"query": query.text, "pool": [{"model": p.model, "score": p.score} for p in picks]}))


def run() -> None:
    """Console entry point: domain errors print as one clear line instead of a traceback."""
    from lens.errors import ModelLensError

    try:
        app()
    except ModelLensError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    run()
