import json
import statistics
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lens.cli import app
from lens.settings import Settings
from tests.conftest import FIXTURES

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["corpus"],
        ["split"],
        ["embed"],
        ["evaluate"],
        ["train"],
        ["rank"],
        ["recommend"],
        ["pool"],
        ["ingest"],
        ["validate"],
        ["data"],
        ["data", "status"],
        ["data", "quarantine"],
    ],
)
def test_every_command_has_help(command: list[str]):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_corpus_command_prints_the_summary():
    result = runner.invoke(app, ["corpus", "--corpus", str(FIXTURES / "public_corpus")])
    assert result.exit_code == 0, result.output
    assert "records" in result.output and "rejected" in result.output


def test_split_command_writes_a_reloadable_manifest(tmp_path: Path):
    out = tmp_path / "split.json"
    result = runner.invoke(app, ["split", "new_model", "--corpus", str(FIXTURES / "public_corpus"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["name"] == "new_model"


def test_bad_corpus_path_fails_with_a_clear_message(tmp_path: Path):
    result = runner.invoke(app, ["corpus", "--corpus", str(tmp_path)])
    assert result.exit_code != 0
    assert "not a corpus directory" in str(result.exception)


def test_evaluate_writes_the_quality_table(slice_dir: Path, shared_home: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MODELLENS_HOME", str(shared_home))
    args = ["evaluate", "--corpus", str(slice_dir), "--split", "new_dataset", "--rankers", "random,task-mean"]
    result = runner.invoke(app, [*args, "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "quality.json").read_text())
    assert set(report["new_dataset"]["rankers"]) == {"random", "task-mean"}
    table = (tmp_path / "quality.md").read_text()
    assert "## `new_dataset`" in table and "| task-mean |" in table


def test_evaluate_averages_rankers_over_seeds(slice_dir: Path, shared_home: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MODELLENS_HOME", str(shared_home))
    args = ["evaluate", "--corpus", str(slice_dir), "--rankers", "random,task-mean", "--out-dir", str(tmp_path)]
    result = runner.invoke(app, [*args, "--ranker-seeds", "1,2,3"])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "quality.json").read_text())["new_dataset"]["rankers"]
    random = rows["random"]
    assert list(random["per_seed"]) == ["1", "2", "3"]
    taus = [metrics["wtau_top"] for metrics in random["per_seed"].values()]
    assert len(set(taus)) == 3 and random["metrics"]["wtau_top"] == pytest.approx(sum(taus) / 3)
    assert {m["wtau_top"] for m in rows["task-mean"]["per_seed"].values()} == {rows["task-mean"]["metrics"]["wtau_top"]}
    random_row = next(
        line for line in (tmp_path / "quality.md").read_text().splitlines() if line.startswith("| random")
    )
    assert f"{statistics.stdev(taus):.4f} (3)" in random_row
    bad = runner.invoke(app, [*args, "--ranker-seeds", "1,x"])
    assert bad.exit_code == 2 and "--ranker-seeds" in bad.output


def _drop_with_one_bad_row(folder: Path) -> Path:
    rows = pd.read_csv(Settings().corpus / "records" / "livebench-2024-06-24.csv.gz", dtype=str).head(30)
    rows.loc[4, "value"] = "n/a"
    folder.mkdir()
    rows.to_csv(folder / "nightly.csv", index=False)
    return folder


def test_ingest_then_status_quarantine_and_validate(tmp_path: Path):
    drop = _drop_with_one_bad_row(tmp_path / "drop")
    ingested = runner.invoke(app, ["ingest", str(drop), "--json"])
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["counts"]["records"]["quarantined"] == 1
    status = json.loads(runner.invoke(app, ["data", "status", "--json"]).stdout)
    assert isinstance(status["snapshot"], str)
    good = pd.read_csv(drop / "nightly.csv").drop(index=4)
    assert {k: status[k] for k in ("records", "models", "datasets", "quarantined")} == {
        "records": 29,
        "models": good["model"].nunique(),
        "datasets": good["dataset"].nunique(),
        "quarantined": 1,
    }
    assert status["quarantine_by_reason"] == [
        {"table": "records", "reason": "value is missing or not a number", "rows": 1}
    ]
    [entry] = json.loads(runner.invoke(app, ["data", "quarantine", "--json"]).stdout)
    assert entry["data"]["value"] == "n/a" and entry["row"] == 5 and entry["origin"].endswith("nightly.csv")
    assert "value is missing or not a number" in runner.invoke(app, ["data", "quarantine"]).output
    validated = runner.invoke(app, ["validate", "--json"])
    assert validated.exit_code == 0 and json.loads(validated.stdout)["success"] is True
    again = runner.invoke(app, ["ingest", str(drop)])
    assert again.exit_code == 0 and "nothing new" in again.output


def test_ingest_names_an_unreadable_file_and_exits_nonzero(tmp_path: Path):
    drop = _drop_with_one_bad_row(tmp_path / "drop")
    (drop / "broken.csv.gz").write_bytes(b"\x1f\x8b\x08 not really gzip")
    result = runner.invoke(app, ["ingest", str(drop)])
    assert result.exit_code == 1
    assert "broken.csv.gz" in result.output
    assert json.loads(runner.invoke(app, ["data", "status", "--json"]).stdout)["records"] == 29


def test_commands_read_the_current_snapshot_once_there_is_one(tmp_path: Path):
    runner.invoke(app, ["ingest", str(_drop_with_one_bad_row(tmp_path / "drop"))])
    result = runner.invoke(app, ["corpus"])
    assert result.exit_code == 0, result.output
    assert "store/snapshots/" in result.output and "29" in result.output


def test_unknown_source_lists_the_registered_ones():
    result = runner.invoke(app, ["ingest", "--source", "hf-nowhere"])
    assert "unknown source 'hf-nowhere'" in str(result.exception) and "local" in str(result.exception)
