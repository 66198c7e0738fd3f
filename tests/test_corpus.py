from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lens.corpus import Corpus, Record, load_corpus
from lens.errors import CorpusError
from tests.conftest import FIXTURES

PUBLIC = FIXTURES / "public_corpus"


def _value(corpus: Corpus, dataset: str, model: str) -> float:
    group = corpus.groups.index[corpus.groups["dataset"] == dataset][0]
    model_id = corpus.model_ids([model])[0]
    rows = corpus.records[(corpus.records["group_id"] == group) & (corpus.records["model_id"] == model_id)]
    return float(rows["value"].iloc[0])


def test_public_layout_loads_multiline_descriptions():
    corpus = load_corpus(PUBLIC)
    squad = corpus.groups[corpus.groups["dataset"] == "squad"].iloc[0]
    assert squad["description"].startswith("Stanford Question Answering Dataset.\nReading comprehension")
    assert squad["source"] == "modellens-corpus"


def test_public_layout_rejects_non_numeric_value_with_reason_and_row():
    corpus = load_corpus(PUBLIC)
    assert len(corpus.rejected) == 1
    bad = corpus.rejected.iloc[0]
    assert bad["model"] == "mistralai/Mistral-7B-v0.1"
    assert bad["reason"] == "value is not a number"
    assert bad["row"] == 5 and bad["file"] == "data.csv"


def test_duplicate_values_are_averaged():
    corpus = load_corpus(PUBLIC)
    assert _value(corpus, "squad", "google/flan-t5-xl") == pytest.approx(78.0)
    assert corpus.duplicates.duplicated_pairs == 1


def test_lower_is_better_metric_is_flipped_so_best_has_highest_value():
    corpus = load_corpus(PUBLIC)
    wer = corpus.groups.index[corpus.groups["metric"] == "wer"][0]
    rows = corpus.records[corpus.records["group_id"] == wer]
    best = rows.loc[rows["z"].idxmax(), "model_id"]
    assert corpus.models.loc[best, "key"] == "openai/whisper-large-v3"
    assert not corpus.groups.loc[wer, "higher_is_better"]


def test_single_model_group_is_kept_but_not_trainable():
    corpus = load_corpus(PUBLIC)
    tiny = corpus.groups[corpus.groups["dataset"] == "tiny-set"].iloc[0]
    assert tiny["n_models"] == 1
    assert not tiny["trainable"]


def test_public_profile_sizes_and_families_are_used_and_unknown_is_never_zero():
    corpus = load_corpus(PUBLIC)
    models = corpus.models.set_index("key")
    assert models.loc["meta-llama/llama-2-7b", "n_parameters"] == pytest.approx(7e9)
    assert models.loc["timm/resnet50.a1-in1k", "n_parameters"] == pytest.approx(2.56e7)
    assert models.loc["qwen/qwen2-7b", "family"] == "qwen"
    assert np.isnan(models.loc["openai/whisper-small", "n_parameters"])
    assert (corpus.models["n_parameters"].dropna() > 0).all()


def test_shared_layout_slice_loads_with_groups_per_leaderboard(slice_corpus: Corpus):
    summary = slice_corpus.summary()
    assert summary["records"] > 40_000
    assert set(slice_corpus.groups["source"]) >= {"timm", "openclip", "open_asr_leaderboard", "livebench"}
    wer = slice_corpus.groups[slice_corpus.groups["source"] == "open_asr_leaderboard"]
    assert not wer["higher_is_better"].any()


def test_full_corpus_loads_every_record(full_corpus: Corpus):
    summary = full_corpus.summary()
    assert summary["records"] + full_corpus.duplicates.rows_in - full_corpus.duplicates.rows_out == 396_163
    assert summary["groups"] == 3_781
    assert summary["rejected"] == 0


def test_z_scores_are_standardised_within_each_trainable_group(slice_corpus: Corpus):
    records = slice_corpus.records
    trainable = slice_corpus.groups.index[slice_corpus.groups["trainable"]]
    stats = records[records["group_id"].isin(trainable)].groupby("group_id")["z"].agg(["mean", "std"])
    assert np.allclose(stats["mean"], 0.0, atol=1e-9)
    sizes = slice_corpus.groups.loc[stats.index, "n_models"]
    assert np.allclose(stats["std"] * np.sqrt((sizes - 1) / sizes), 1.0, atol=1e-6)


def test_missing_column_error_names_file_and_column(tmp_path: Path):
    (tmp_path / "records").mkdir()
    pd.DataFrame({"source": ["s"], "task": ["t"], "dataset": ["d"], "model": ["m"], "value": [1.0]}).to_csv(
        tmp_path / "records" / "board.csv", index=False
    )
    with pytest.raises(CorpusError, match=r"missing column.*metric.*board\.csv"):
        load_corpus(tmp_path)


def test_not_a_corpus_directory_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CorpusError, match="not a corpus directory"):
        load_corpus(tmp_path)


def test_parquet_and_csv_record_files_load_together(tmp_path: Path):
    (tmp_path / "records").mkdir()
    rows = {"source": "s", "task": "t", "dataset": "d", "metric": "acc", "higher_is_better": 1}
    pd.DataFrame([rows | {"model": "a/x", "value": 1.0}]).to_csv(tmp_path / "records" / "one.csv.gz", index=False)
    pd.DataFrame([rows | {"model": "b/y", "value": 2.0}]).to_parquet(tmp_path / "records" / "two.parquet")
    corpus = load_corpus(tmp_path)
    assert len(corpus.records) == 2
    assert corpus.groups.loc[0, "trainable"]


def test_record_rejects_empty_fields_and_non_finite_values():
    with pytest.raises(ValueError, match="model"):
        Record("s", "t", "d", " ", "acc", 1.0, True)
    with pytest.raises(ValueError, match="finite"):
        Record("s", "t", "d", "m", "acc", float("nan"), True)


def test_corpus_from_records_matches_the_fingerprint_of_the_same_data_in_another_order():
    records = [
        Record("board", "qa", "squad", "org/a", "f1", 70.0, True),
        Record("board", "qa", "squad", "org/b", "f1", 75.0, True),
        Record("board", "asr", "libri", "org/a", "wer", 3.0, False),
        Record("board", "asr", "libri", "org/b", "wer", 5.0, False),
    ]
    forward, backward = Corpus.from_records(records), Corpus.from_records(records[::-1])
    assert forward.fingerprint == backward.fingerprint
    assert Corpus.from_records(records[:3]).fingerprint != forward.fingerprint
