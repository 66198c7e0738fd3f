"""The `modellens` command line: ingest and inspect data, make splits, embed texts, evaluate, train and rank."""

from __future__ import annotations

import json
import logging
import os
import platform
import re
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
    Path | None,
    typer.Option(
        "--corpus",
        help="Corpus directory, store snapshot or store (default: the store's current snapshot if any, else "
        "$MODELLENS_CORPUS or ../shared/corpus).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Split and ranker seed (default: settings.seed).")]


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO is internal chatter


def _corpus_path(corpus: Path | None, settings: Settings) -> Path:
    """`--corpus` if given, else the record store's current snapshot, else the raw corpus folder."""
    from lens.store import Store

    if corpus is not None:
        return corpus
    store = Store(settings.store_dir)
    return store.current_dir() if store.current() else settings.corpus


def _load(corpus: Path | None, settings: Settings):
    from lens.corpus import load_corpus

    path = _corpus_path(corpus, settings)
    logging.getLogger(__name__).info("corpus: %s", path)
    started = time.perf_counter()
    loaded = load_corpus(path)
    return loaded, time.perf_counter() - started


@app.command("corpus")
def corpus_info(corpus: CorpusOption = None) -> None:
    """Load and normalise a corpus, and print what it holds."""
    settings = Settings()
    loaded, seconds = _load(corpus, settings)
    table = Table(title=f"corpus {_corpus_path(corpus, settings)} ({loaded.fingerprint})")
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


def _items(text: str) -> list[str]:
    """The non-empty items of a comma-separated option."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _seeds(text: str) -> list[int]:
    """`--ranker-seeds 2025,1,2` as distinct integers, or a usage error that quotes what was given."""
    items = _items(text)
    bad = [item for item in items if not re.fullmatch(r"-?\d+", item)]
    if bad or not items or len(set(map(int, items))) < len(items):
        raise typer.BadParameter(
            f"expected distinct comma-separated integers, got {text!r}", param_hint="--ranker-seeds"
        )
    return [int(item) for item in items]


@app.command("evaluate")
def evaluate_command(
    corpus: CorpusOption = None,
    split: Annotated[
        str, typer.Option(help="Split name, `all`, or a manifest path written by `modellens split`.")
    ] = "new_dataset",
    rankers: Annotated[str, typer.Option(help="Comma-separated ranker names, or `all`.")] = "all",
    seed: SeedOption = None,
    ranker_seeds: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated seeds: each ranker is fitted once per seed and its row is their mean "
            "(default: one fit, with the split seed)."
        ),
    ] = None,
    out_dir: Annotated[Path, typer.Option(help="Where quality.json and quality.md are written.")] = Path(
        "bench/results"
    ),
) -> None:
    """Fit rankers on a split's training part and print their metrics on its test part."""
    from dataclasses import replace

    from lens.embeddings import Embedder
    from lens.evaluate import evaluate, markdown_table, over_seeds, quality_markdown, record_results, threads_env
    from lens.rankers import Context, available, make_ranker
    from lens.splits import SPLITS, Split, make_split

    settings = Settings()
    loaded, _ = _load(corpus, settings)
    seed = seed if seed is not None else settings.seed
    fits = _seeds(ranker_seeds) if ranker_seeds else [seed]
    context = Context(Embedder(settings.encoder, settings.cache_dir), seed)
    context.embedder.encode(list(loaded.groups["text"]) + list(loaded.models["text"]), progress=True)
    names = available() if rankers == "all" else _items(rankers)
    names = [make_ranker(n, context).name for n in names]  # resolve aliases; fail on a typo before any work
    if split == "all":
        plans = [(s, make_split(loaded, s, seed)) for s in SPLITS]
    elif split in SPLITS:
        plans = [(split, make_split(loaded, split, seed))]
    else:
        manifest = Split.load(Path(split))
        plans = [(manifest.name, manifest)]
    command = threads_env() + "modellens " + shlex.join(sys.argv[1:])
    for name, plan in plans:
        started = time.perf_counter()
        parts = plan.partition(loaded)
        results = [
            over_seeds(
                [evaluate(make_ranker(r, replace(context, seed=s)), parts, name, progress=True) for s in fits], fits
            )
            for r in names
        ]
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
    from lens.training import LensConfig, train_committee, train_selected

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
        selection = trained = train_committee(parts.train, val_part, embedder, lens_config, seed)
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

    from lens.recommender import Recommender

    recommender = Recommender.load(model, Settings().cache_dir)
    query = _query(dataset, description, task, metric)
    picks = recommender.recommend(query, k, max_params, license or (), family or ())
    print(json.dumps({"query": query.text, "pool": [{"model": p.model, "score": p.score} for p in picks]}))


@app.command("ingest")
def ingest_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Files or folders in the shared or public corpus layout (default: the settings' sources)."),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source", help="A registered source to read (repeatable): local, hf-corpus, hf-leaderboards, hf-models."
        ),
    ] = None,
    strict: Annotated[bool, typer.Option(help="Stop the whole ingest if any file is unreadable.")] = False,
    accept_batch_failures: Annotated[
        bool, typer.Option(help="Publish even when batch-level checks fail (after reviewing the validation summary).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Take new leaderboard files into the record store as a new snapshot; files ingested before are skipped."""
    from lens.ingest import ingest
    from lens.sources import make_source
    from lens.sources.local import LocalSource

    settings = Settings()
    sources = [LocalSource(tuple(paths))] if paths else []
    sources += [make_source(name, settings) for name in source or ()]
    sources = sources or [make_source(name, settings) for name in settings.sources]
    report = ingest(
        sources, settings=settings, strict=strict, accept_batch_failures=accept_batch_failures, progress=not as_json
    )
    if as_json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        done = f"snapshot {report.snapshot} published" if report.outcome == "published" else "nothing new"
        table = Table(title=f"ingest {report.id}: {done} ({report.seconds:.1f} s)")
        table.add_column("rows")
        for name in report.counts:
            table.add_column(name, justify="right")
        for field in (
            "rows_in",
            "added",
            "updated",
            "unchanged",
            "duplicates",
            "superseded",
            "quarantined",
            "resolved",
        ):
            table.add_row(field.replace("_", " "), *(f"{getattr(c, field):,}" for c in report.counts.values()))
        console.print(table)
        console.print(f"{len(report.files)} new file(s); current snapshot: {report.snapshot or '(none)'}")
        if report.validation:
            console.print(f"validation: {report.validation.with_suffix('.md')}")
    for failed in report.failed_files:
        Console(stderr=True).print(f"[red]unreadable:[/] {failed.error}")
    if report.failed_files:
        raise typer.Exit(1)


@app.command("validate")
def validate_command(
    snapshot: Annotated[str | None, typer.Option(help="Snapshot id (default: the current one).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the expectation suites on a stored snapshot, and the batch checks against its parent."""
    from lens.ingest import validate_snapshot

    report, path = validate_snapshot(snapshot=snapshot)
    if as_json:
        print(json.dumps(report.to_dict(), indent=1, default=str))
    else:
        console.print(report.summary())
        console.print(f"result: {path}")
    if not report.clean:
        raise typer.Exit(1)


data_app = typer.Typer(help="Inspect the record store: its current snapshot and the quarantine.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("status")
def status_command(as_json: JsonOption = False) -> None:
    """The current snapshot, its record/model/dataset counts, quarantine counts by reason, and the last ingest."""
    from lens.store import Store

    status = Store(Settings().store_dir).status()
    if as_json:
        print(json.dumps(status, indent=1))
        return
    table = Table(title=f"record store {status['store']}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("current snapshot", status["snapshot"] or "(none: run `modellens ingest`)")
    for name in ("snapshots", "records", "models", "datasets", "model_metadata", "dataset_metadata", "history"):
        table.add_row(name.replace("_", " "), f"{status[name]:,}")
    table.add_row("quarantined", f"{status['quarantined']:,}")
    for entry in status["quarantine_by_reason"]:
        table.add_row(f"  {entry['table']}: {entry['reason']}", f"{entry['rows']:,}")
    last = status["last_ingest"]
    if last:
        table.add_row("last ingest", f"{last['started_at']} {last['outcome']}")
        for failed in last["unreadable_files"]:
            table.add_row("  unreadable", failed["error"])
    console.print(table)


@data_app.command("quarantine")
def quarantine_command(
    as_json: JsonOption = False,
    include_resolved: Annotated[bool, typer.Option("--all", help="Include entries a later ingest resolved.")] = False,
    export: Annotated[
        Path | None, typer.Option(help="Write the open quarantine to this folder, to fix and `modellens ingest` again.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows shown in the table (JSON lists all).")] = 50,
) -> None:
    """The quarantined rows with their reasons (and where each came from)."""
    from lens.ingest import export_quarantine
    from lens.store import Store

    store = Store(Settings().store_dir)
    entries = store.quarantine(include_resolved=include_resolved)
    if export is not None:
        for path in export_quarantine(export, store):
            console.print(f"wrote {path}")
        console.print(f"fix the rows, then: modellens ingest {export}")
        return
    if as_json:
        rows = entries.drop(columns="data").assign(data=[json.loads(d) for d in entries["data"]])
        print(rows.to_json(orient="records", indent=1, date_format="iso", force_ascii=False))
        return
    console.print(f"{len(entries):,} quarantined row(s) in snapshot {store.current() or '(none)'}", markup=False)
    shown = entries.head(limit)
    for (table, reason), group in shown.groupby(["table", "reason"], sort=False):
        console.print(f"\n{table}: {reason}", style="bold", markup=False)
        for entry in group.itertuples():
            console.print(
                f"  {Path(entry.origin).name}:{entry.row}  {_printable(entry.key)}", markup=False, highlight=False
            )
    if len(entries) > limit:
        console.print(f"\n... {len(entries) - limit:,} more (--limit, or --json for all)")


def _printable(text: str, limit: int = 200) -> str:
    """Quarantined names as safe terminal text: control characters escaped (no stray ANSI codes), long ones cut."""
    escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)
    return escaped if len(escaped) <= limit else f"{escaped[:limit]}... ({len(text):,} characters)"


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
