"""The data contracts: GX suites loaded from expectations/, row-level reasons, table- and batch-level failures."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lens.ingest import ingest, validate_snapshot
from lens.settings import Settings
from lens.sources.local import LocalSource
from lens.store import Store
from lens.validation import SUITES, MetricKinds, Validator, batch_profile, prepare

EXPECTATIONS = Settings().expectations
LIVEBENCH = sorted((Settings().corpus / "records").glob("livebench-*.csv.gz"))


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator(EXPECTATIONS)


def _records(rows: list[tuple], validator: Validator) -> pd.DataFrame:
    raw = pd.DataFrame(rows, columns=["source", "task", "dataset", "model", "metric", "value", "higher_is_better"])
    return prepare("records", raw, validator.kinds).assign(origin="test.csv")


@pytest.mark.parametrize("name", [*SUITES, "batch"])
def test_every_suite_in_expectations_loads_in_gx_and_gives_every_expectation_a_reason(name: str):
    import great_expectations as gx

    spec = json.loads((EXPECTATIONS / f"{name}.json").read_text())
    suite = gx.ExpectationSuite(**spec)
    assert len(suite.expectations) == len(spec["expectations"]) > 3
    assert all(e["meta"]["reason"] for e in spec["expectations"])


@pytest.mark.parametrize(
    ("metric", "kind"),
    [
        ("WER", "error_rate"),
        ("Percentage error", "error_rate"),
        ("ndcg_at_10", "fraction_or_percentage"),
        ("top1_acc", "fraction_or_percentage"),
        ("cosine_spearman", "signed_fraction_or_percentage"),
        ("Test perplexity", "perplexity"),
        ("Bit per Character (BPC)", "loss"),
        ("Arena Elo", "elo"),
        ("score", "other"),
    ],
)
def test_metric_names_map_to_kinds(metric: str, kind: str):
    assert MetricKinds.load(EXPECTATIONS / "metric_kinds.json").kind(metric) == kind


def test_each_failing_row_carries_the_first_expectation_it_failed(validator: Validator):
    frame = _records(
        [
            ("lb", "ASR", "libri", "whisper", "WER", "3.1", "0"),
            ("lb", "ASR", "libri", "wav2vec", "WER", "-2", "0"),
            ("lb", "QA", "squad", "bert", "accuracy", "1e12", "1"),
            ("lb", "QA", "squad", "t5", "accuracy", "abc", "1"),
            ("lb", "QA", "squad", "", "accuracy", "50", "1"),
            ("lb", "QA", "squad", "gpt\x07", "accuracy", "50", "1"),
            ("lb", "QA", "squad", "llama", "accuracy", "50", "yes"),
            ("lb", "ASR", "libri", "hubert", "WER", "4.0", "1"),
            ("lb", "QA", "squad", "x" * 300, "accuracy", "50", "1"),
            ("lb", "Games", "atari", "dqn", "score", "inf", "1"),
        ],
        validator,
    )
    checked = validator.validate("records", frame)
    assert checked.reasons.tolist() == [
        "",
        "error rate (WER, CER, error %): value must lie between 0 and 1000",
        "accuracy-like metric (a fraction or a percentage): value must lie between 0 and 100",
        "value is missing or not a number",
        "model is empty",
        "model contains control characters",
        "higher_is_better is missing or not a number (1 = higher is better, 0 = lower)",
        "error rates, perplexities and losses are lower-is-better: higher_is_better must be 0",
        "model is longer than 256 characters",
        "value is not finite or beyond ±1e9",
    ]
    assert checked.expectations[1] == "expect_column_values_to_be_between(value | metric_kind == 'error_rate')"
    assert checked.table_failures == []


def test_conflicting_values_for_one_key_in_one_file_fail_every_copy(validator: Validator):
    rows = [("lb", "QA", "squad", "bert", "f1", v, "1") for v in ("77", "79")]
    frame = pd.concat([_records(rows, validator), _records(rows[:1], validator).assign(origin="other.csv")])
    checked = validator.validate("records", frame.reset_index(drop=True))
    assert checked.failed.tolist() == [True, True, False]  # the same key from another file is not a conflict


def test_a_broken_schema_fails_the_table_not_its_rows(validator: Validator):
    frame = _records([("lb", "QA", "squad", "bert", "f1", "70", "1")], validator).drop(columns="metric_kind")
    checked = validator.validate("records", frame)
    assert not checked.failed.any()
    assert any("exactly the record columns" in o.reason for o in checked.table_failures)


def test_the_real_corpus_passes_except_for_mangled_model_names(validator: Validator, real_corpus_dir: Path):
    raw = pd.concat(
        pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""])
        for p in sorted((real_corpus_dir / "records").glob("*.csv.gz"))
    )
    frame = prepare("records", raw.reset_index(drop=True), validator.kinds).assign(origin="corpus")
    checked = validator.validate("records", frame)
    assert checked.reasons[checked.failed].unique().tolist() == ["model contains control characters"]
    assert frame.loc[checked.failed, "model"].str.contains("\x02wzxhzdk:").all()  # HTML-to-markdown placeholders


def test_batch_profile_measures_growth_new_sources_and_value_shift():
    previous, release = pd.concat(pd.read_csv(p) for p in LIVEBENCH[:3]), pd.read_csv(LIVEBENCH[3])
    honest = pd.concat([previous, release], ignore_index=True)
    incoming = pd.Series(np.arange(len(honest)) >= len(previous))
    profile = batch_profile(previous, honest, incoming).iloc[0]
    assert profile["row_change"] == pytest.approx(len(release) / len(previous))
    assert profile["new_source_share"] == 0 and profile["value_shift"] < 0.4
    rescaled = pd.concat([previous, release.assign(value=release["value"] / 100)], ignore_index=True)
    shifted = batch_profile(previous, rescaled, incoming).iloc[0]
    assert shifted["value_shift"] > 0.9 and shifted["shifted_source"] == "livebench"


def test_validating_a_snapshot_writes_a_json_result_and_a_summary():
    ingest([LocalSource(tuple(LIVEBENCH[:2]))])
    report, path = validate_snapshot()
    assert report.clean and json.loads(path.read_text())["success"] is True
    assert path.with_suffix(".md").read_text().startswith(f"# Validation of snapshot {Store().current()}: passed")


def test_a_tightened_contract_flags_stored_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ingest([LocalSource((LIVEBENCH[0],))])
    stricter = shutil.copytree(EXPECTATIONS, tmp_path / "expectations")
    kinds = json.loads((stricter / "metric_kinds.json").read_text())
    kinds["kinds"].insert(0, {"kind": "perplexity", "pattern": "^score$"})  # LiveBench scores now read as perplexities
    (stricter / "metric_kinds.json").write_text(json.dumps(kinds))
    monkeypatch.setenv("MODELLENS_EXPECTATIONS", str(stricter))
    report, _ = validate_snapshot()
    assert not report.clean and report.tables["records"].failed.sum() > 0
