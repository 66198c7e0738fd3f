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
from rich.table import Table

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
