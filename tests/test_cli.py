import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lens.cli import app
from tests.conftest import FIXTURES

runner = CliRunner()


@pytest.mark.parametrize(
    "command", [[], ["corpus"], ["split"], ["embed"], ["evaluate"], ["train"], ["rank"], ["recommend"], ["pool"]]
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
