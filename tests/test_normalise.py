import numpy as np
import pytest

from lens.corpus import Corpus, Record
from lens.normalise import lower_is_better


@pytest.mark.parametrize(
    "metric", ["WER", "cer", "Test perplexity", "Bit per Character (BPC)", "Percentage error", "rmse", "ppl", "EER"]
)
def test_error_metrics_read_as_lower_is_better(metric: str):
    assert lower_is_better(metric)


@pytest.mark.parametrize("metric", ["accuracy", "ndcg_at_10", "f1", "Precision", "BLEU", "win rate", "Exact Match"])
def test_quality_metrics_read_as_higher_is_better(metric: str):
    assert not lower_is_better(metric)


def _corpus(scale_b: float) -> Corpus:
    values = {"m/a": 0.61, "m/b": 0.72, "m/c": 0.55}
    records = [Record("board-a", "qa", "mmlu", m, "acc", v, True) for m, v in values.items()]
    records += [Record("board-b", "qa", "mmlu", m, "acc", v * scale_b, True) for m, v in values.items()]
    return Corpus.from_records(records)


def test_same_benchmark_on_two_leaderboards_is_two_groups_never_pooled():
    corpus = _corpus(100.0)
    assert len(corpus.groups) == 2
    assert set(corpus.groups["source"]) == {"board-a", "board-b"}


def test_z_scores_do_not_depend_on_a_leaderboards_scale():
    corpus = _corpus(100.0)  # board-b reports percentages, board-a fractions
    z = corpus.records.pivot(index="model_id", columns="group_id", values="z")
    assert np.allclose(z[0], z[1])


def test_constant_group_gets_zero_z_and_is_not_trainable():
    records = [Record("b", "t", "d", m, "acc", 50.0, True) for m in ("x/1", "x/2", "x/3")]
    corpus = Corpus.from_records(records)
    assert (corpus.records["z"] == 0).all()
    assert not corpus.groups.loc[0, "trainable"]
