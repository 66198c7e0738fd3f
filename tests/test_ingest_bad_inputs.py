"""A collection of damaged inputs, ingested together as one nightly drop next to a good file.

Each kind of damage must end as a clear error naming its file, or as quarantined rows with the failing expectation as
their reason; the good rows (of the good file and of the damaged files) are stored, and nothing is lost: for every
file, rows written = rows stored + rows quarantined + identical repeats merged.
"""

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lens.errors import IngestError
from lens.ingest import IngestReport, ingest
from lens.settings import Settings
from lens.sources.local import LocalSource
from lens.store import Store
from tests.conftest import FIXTURES

RECORDS = Settings().corpus / "records"
CONFLICT = "one file gives conflicting values for the same (source, task, dataset, metric, model)"
NOT_A_NUMBER = "value is missing or not a number"


def real(name: str, offset: int, rows: int = 5) -> pd.DataFrame:
    """Real rows of a shared-corpus leaderboard, as text (each case takes its own rows: no key is shared)."""
    return (
        pd.read_csv(RECORDS / name, dtype=str, keep_default_na=False)
        .iloc[offset : offset + rows]
        .reset_index(drop=True)
    )


def csv_file(folder: Path, frame: pd.DataFrame, name: str = "records.csv", **options) -> Path:
    path = folder / name
    frame.to_csv(path, index=False, **options)
    return path


def damaged(frame: pd.DataFrame, row: int, **values) -> pd.DataFrame:
    frame = frame.copy()
    for column, value in values.items():
        frame.loc[row, column] = value
    return frame


def truncated_gzip(folder: Path) -> Path:
    path = folder / "truncated.csv.gz"
    data = (RECORDS / "livebench-2024-07-26.csv.gz").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def wrong_delimiter(folder: Path) -> Path:
    return csv_file(folder, real("alpacaeval.csv.gz", 0), sep=";")


def with_bom(folder: Path) -> Path:
    path = folder / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + real("alpacaeval.csv.gz", 10).to_csv(index=False).encode())
    return path


def empty_file(folder: Path) -> Path:
    path = folder / "empty.csv"
    path.write_bytes(b"")
    return path


def parquet_with_text_values(folder: Path) -> Path:
    path = folder / "typed.parquet"
    pq.write_table(pa.Table.from_pandas(real("alpacaeval.csv.gz", 20)), path)  # every column, value included, as text
    return path


def corrupt_parquet(folder: Path) -> Path:
    path = folder / "corrupt.parquet"
    path.write_bytes(b"PAR1" + bytes(range(256)) * 4)
    return path


def broken_jsonl(folder: Path) -> Path:
    path = folder / "records.jsonl"
    lines = real("alpacaeval.csv.gz", 30).to_json(orient="records", lines=True).splitlines()
    path.write_text("\n".join([*lines[:3], lines[3][:25]]) + "\n")
    return path


def latin1_text(folder: Path) -> Path:
    path = folder / "latin1.csv"
    path.write_bytes(damaged(real("alpacaeval.csv.gz", 40), 0, model="modèle").to_csv(index=False).encode("latin-1"))
    return path


def ragged_row(folder: Path) -> Path:
    path = folder / "ragged.csv"
    text = real("alpacaeval.csv.gz", 50).to_csv(index=False)
    path.write_text(text + "alpacaeval,x,y,z,score,1,1,extra,fields\n")
    return path


def public_mangled_header(folder: Path) -> Path:
    text = (FIXTURES / "public_corpus" / "data.csv").read_text().replace("task,dataset,model", "tsak,datset,model", 1)
    (folder / "data.csv").write_text(text)
    return folder / "data.csv"


def public_broken_vocab(folder: Path) -> Path:
    (folder / "data.csv").write_text((FIXTURES / "public_corpus" / "data.csv").read_text())
    (folder / "model_profile.json").write_text('{"meta-llama/Llama-2-7b-hf": {"family": ')
    return folder / "data.csv"


def models_with_text_sizes(folder: Path) -> Path:
    models = pd.read_csv(Settings().corpus / "models.csv.gz", dtype=str, keep_default_na=False).iloc[:4]
    return csv_file(folder, damaged(models, 1, n_parameters="7B"), "models.csv")


def dataset_with_huge_description(folder: Path) -> Path:
    datasets = pd.read_csv(Settings().corpus / "datasets.csv", dtype=str, keep_default_na=False).iloc[:3]
    return csv_file(folder, damaged(datasets, 2, description="long " * 6000), "datasets.csv")


@dataclass(frozen=True)
class Damage:
    """One kind of damage: how to write it, and what must come of it."""

    name: str
    write: Callable[[Path], Path]
    error: str | None = None
    """A phrase the file's error must contain (the error also names the file)."""
    quarantined: dict[str, int] | None = None
    """Quarantined rows by reason."""
    repeats: int = 0
    """Identical rows merged."""
    table: str = "records"


CASES = [
    Damage("truncated gzip", truncated_gzip, error="Compressed file ended"),
    Damage("missing column", lambda d: csv_file(d, real("alpacaeval.csv.gz", 60).drop(columns="value")),
           error="missing column(s) ['value']"),
    Damage("renamed columns", lambda d: csv_file(d, real("alpacaeval.csv.gz", 70).rename(columns={"model": "mdl",
           "value": "score"})), error="missing column(s) ['model', 'value']"),
    Damage("NaN value", lambda d: csv_file(d, damaged(real("timm.csv.gz", 0), 1, value="NaN")),
           quarantined={NOT_A_NUMBER: 1}),
    Damage("inf value", lambda d: csv_file(d, damaged(real("benchbench.csv.gz", 0), 2, value="inf")),
           quarantined={"value is not finite or beyond ±1e9": 1}),
    Damage("text value", lambda d: csv_file(d, damaged(real("timm.csv.gz", 10), 0, value="seventy")),
           quarantined={NOT_A_NUMBER: 1}),
    Damage("negative WER", lambda d: csv_file(d, damaged(real("open_asr_leaderboard.csv.gz", 0), 3, value="-3.2")),
           quarantined={"error rate (WER, CER, error %): value must lie between 0 and 1000": 1}),
    Damage("accuracy of 1e12", lambda d: csv_file(d, damaged(real("timm.csv.gz", 20), 4, value="1e12")),
           quarantined={"accuracy-like metric (a fraction or a percentage): value must lie between 0 and 100": 1}),
    Damage("duplicates with conflicting values", lambda d: csv_file(d, pd.concat(
           [real("timm.csv.gz", 30), damaged(real("timm.csv.gz", 30, 1), 0, value="1.5")])),
           quarantined={CONFLICT: 2}),
    Damage("identical duplicates", lambda d: csv_file(d, pd.concat([real("timm.csv.gz", 40),
           real("timm.csv.gz", 40, 2)])), quarantined={}, repeats=2),
    Damage("control characters in a name", lambda d: csv_file(d, damaged(real("openclip.csv.gz", 0), 0,
           model="ViT-B-32\x1b[31m\x00")), quarantined={"model contains control characters": 1}),
    Damage("10 KB model name", lambda d: csv_file(d, damaged(real("openclip.csv.gz", 10), 1, model="vit" * 3400)),
           quarantined={"model is longer than 256 characters": 1}),
    Damage("empty model name", lambda d: csv_file(d, damaged(real("openclip.csv.gz", 20), 2, model="   ")),
           quarantined={"model is empty": 1}),
    Damage("invalid direction flag", lambda d: csv_file(d, damaged(damaged(real("openclip.csv.gz", 30), 0,
           higher_is_better="yes"), 1, higher_is_better="2")), quarantined={
           "higher_is_better is missing or not a number (1 = higher is better, 0 = lower)": 1,
           "higher_is_better must be 0 or 1": 1}),
    Damage("WER marked higher-is-better", lambda d: csv_file(d, damaged(real("open_asr_leaderboard.csv.gz", 10), 0,
           higher_is_better="1")), quarantined={
           "error rates, perplexities and losses are lower-is-better: higher_is_better must be 0": 1}),
    Damage("empty file", empty_file, error="the file is empty"),
    Damage("byte-order mark", with_bom, quarantined={}),
    Damage("wrong delimiter", wrong_delimiter, error="looks ';'-delimited"),
    Damage("Parquet with wrong types", parquet_with_text_values, error="column 'value' has Parquet type"),
    Damage("corrupt Parquet", corrupt_parquet, error="cannot read it as records"),
    Damage("broken JSON line", broken_jsonl, error="cannot read it as records"),
    Damage("Latin-1 bytes", latin1_text, error="codec can't decode"),
    Damage("ragged row", ragged_row, error="Expected 7 fields"),
    Damage("ModelLens layout with a mangled header", public_mangled_header,
           error="missing column(s) ['task', 'dataset']"),
    Damage("ModelLens layout with broken vocab JSON", public_broken_vocab, error="invalid JSON"),
    Damage("model size as text", models_with_text_sizes, quarantined={"n_parameters is not a number": 1},
           table="models"),
    Damage("30 KB dataset description", dataset_with_huge_description,
           quarantined={"description is longer than 20,000 characters": 1}, table="datasets"),
]  # fmt: skip
GOOD = real("livebench-2025-04-02.csv.gz", 0, 200)


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    """The nightly drop: one folder per kind of damage, plus a folder with a good file."""
    root = tmp_path_factory.mktemp("drop")
    written = {}
    for number, case in enumerate(CASES):
        folder = root / f"{number:02d}"
        folder.mkdir()
        written[case.name] = case.write(folder)
    (root / "good").mkdir()
    written["good"] = csv_file(root / "good", GOOD)
    return written, root


@pytest.fixture(scope="module")
def ingested(drop, tmp_path_factory: pytest.TempPathFactory) -> tuple[IngestReport, Store]:
    written, _ = drop
    store = Store(tmp_path_factory.mktemp("home") / "store")
    return ingest([LocalSource(tuple(p.parent for p in written.values()))], store), store


def test_the_collection_has_at_least_fifteen_kinds_of_damage():
    assert len({c.name for c in CASES}) == len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_damage_is_an_error_or_a_quarantine_and_nothing_is_lost(case: Damage, drop, ingested):
    written, _ = drop
    report, store = ingested
    path = str(written[case.name].absolute())
    errors = {f.origin: f.error for f in report.failed_files}
    if case.error is not None:
        assert path in errors and case.error in errors[path] and written[case.name].name in errors[path]
        assert path not in {f.origin for f in report.files if f.error is None}  # retried after a fix
        return
    assert path not in errors
    table = store.read(case.table)
    stored = int((table["origin"] == path).sum())
    quarantine = store.quarantine()
    mine = quarantine[(quarantine["origin"] == path) & (quarantine["table"] == case.table)]
    assert mine["reason"].value_counts().to_dict() == case.quarantined
    [file] = [f for f in report.files if f.origin == path]
    assert file.rows == stored + len(mine) + case.repeats  # nothing lost
    assert all(json.loads(d) for d in mine["data"])  # each row kept exactly as received


def test_the_good_rows_of_the_drop_are_all_stored(drop, ingested):
    written, _ = drop
    _, store = ingested
    records = store.read("records")
    assert int((records["origin"] == str(written["good"].absolute())).sum()) == len(GOOD)


def test_the_whole_drop_is_accounted_for(ingested):
    report, store = ingested
    for table, counts in report.counts.items():
        kept = len(store.read(table)) + len(store.quarantine().query("table == @table"))
        assert counts.rows_in == kept + counts.duplicates, table
    assert len(report.failed_files) == sum(c.error is not None for c in CASES)
    assert store.last_ingest().report["files"] and store.status()["last_ingest"]["unreadable_files"]


def test_strict_mode_stops_the_whole_drop_on_one_unreadable_file(tmp_path: Path):
    truncated_gzip(tmp_path)
    csv_file(tmp_path, GOOD, "good.csv")
    with pytest.raises(IngestError, match=r"truncated\.csv\.gz"):
        ingest([LocalSource((tmp_path,))], strict=True)
    assert Store().current() is None


def test_a_fixed_file_is_read_again_after_an_error(tmp_path: Path):
    path = wrong_delimiter(tmp_path)
    assert ingest([LocalSource((path,))]).failed_files
    real("alpacaeval.csv.gz", 0).to_csv(path, index=False)
    report = ingest([LocalSource((path,))])
    assert report.failed_files == [] and report.counts["records"].added == 5


def test_a_gzip_that_is_not_gzip_is_an_error_not_a_crash(tmp_path: Path):
    path = tmp_path / "plain.csv.gz"
    path.write_bytes(GOOD.to_csv(index=False).encode())
    [failed] = ingest([LocalSource((path,))]).failed_files
    assert "plain.csv.gz" in failed.error


def test_a_file_of_only_bad_rows_is_quarantined_row_by_row_not_failed(tmp_path: Path):
    path = tmp_path / "all_bad.csv.gz"
    path.write_bytes(gzip.compress(real("timm.csv.gz", 100, 50).assign(value="n/a").to_csv(index=False).encode()))
    report = ingest([LocalSource((path,))])
    assert report.counts["records"].quarantined == 50 and Store().status()["quarantined"] == 50
    assert Store().quarantine()["origin"].eq(str(path.absolute())).all()
