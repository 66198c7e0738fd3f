import numpy as np
import pytest

from lens.corpus import Corpus
from lens.embeddings import Embedder
from lens.errors import UnknownRankerError
from lens.evaluate import evaluate
from lens.rankers import Context, Query, available, make_ranker
from lens.splits import SplitParts, make_split

BASELINES = (
    "random",
    "popularity",
    "global-mean",
    "task-mean",
    "text-nn",
    "dataset-knn",
    "matrix-factorisation",
    "lambdarank",
)


@pytest.fixture(scope="module")
def context(embedder: Embedder) -> Context:
    return Context(embedder, seed=2025)


@pytest.fixture(scope="module")
def new_dataset(slice_corpus: Corpus) -> SplitParts:
    return make_split(slice_corpus, "new_dataset", seed=2025).partition(slice_corpus)


@pytest.fixture(scope="module")
def fitted(context: Context, new_dataset: SplitParts) -> dict:
    """Each baseline fitted on the new_dataset training part (by `evaluate`), with its test metrics."""
    rankers = {name: make_ranker(name, context) for name in BASELINES}
    return {name: (ranker, evaluate(ranker, new_dataset, "new_dataset").metrics) for name, ranker in rankers.items()}


@pytest.fixture(scope="module")
def new_dataset_results(fitted: dict) -> dict:
    return {name: metrics for name, (_, metrics) in fitted.items()}


def test_registry_holds_every_baseline():
    assert set(BASELINES) <= set(available())


def test_aliases_resolve_and_unknown_names_list_the_known_ones(context: Context):
    assert make_ranker("LTR", context).name == "lambdarank"
    assert make_ranker("mf", context).name == "matrix-factorisation"
    with pytest.raises(UnknownRankerError, match="task-mean"):
        make_ranker("oracle", context)


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_scores_held_out_datasets(new_dataset_results: dict, name: str):
    metrics = new_dataset_results[name]
    assert metrics["groups"] >= 10
    for key in ("wtau_top", "wtau_official", "ndcg@10", "hit@1", "regret@1", "rhit@10"):
        assert np.isfinite(metrics[key]), key


def test_random_is_at_chance_and_learned_baselines_beat_it(new_dataset_results: dict):
    assert abs(new_dataset_results["random"]["wtau_top"]) < 0.1
    for name in ("task-mean", "dataset-knn", "lambdarank", "global-mean"):
        assert new_dataset_results[name]["wtau_top"] > new_dataset_results["random"]["wtau_top"] + 0.2, name
        assert new_dataset_results[name]["regret@1"] < new_dataset_results["random"]["regret@1"], name


def test_scores_cover_every_candidate_and_are_finite(fitted: dict, new_dataset: SplitParts):
    query = Query("a brand-new benchmark", "Image Classification", "top1_acc", "photos of birds in the wild")
    pool = np.arange(len(new_dataset.train.models))
    for name, (ranker, _) in fitted.items():
        scores = ranker.score(query, pool)
        assert scores.shape == pool.shape and np.isfinite(scores).all(), name


def test_cold_start_models_inherit_their_family_and_size_cell(context: Context, slice_corpus: Corpus):
    parts = make_split(slice_corpus, "new_model", seed=2025).partition(slice_corpus)
    ranker = make_ranker("global-mean", context).fit(parts.train)
    unseen = parts.test.records["model_id"].unique()
    scores = ranker.score(Query("x", "y", "z"), unseen)
    assert np.unique(scores).size > 1  # not a constant fallback: families and sizes tell them apart
    result = evaluate(make_ranker("task-mean", context), parts, "new_model").metrics
    assert result["wtau_top"] > 0.2


def test_models_of_an_unseen_family_are_ranked_by_size(context: Context, slice_corpus: Corpus):
    parts = make_split(slice_corpus, "family", seed=2025).partition(slice_corpus)
    unseen = parts.test.records["model_id"].unique()
    assert not parts.train.records["model_id"].isin(unseen).any()
    buckets = parts.test.models["size_bucket"].to_numpy()[unseen]
    for name in ("global-mean", "task-mean", "dataset-knn"):
        ranker = make_ranker(name, context).fit(parts.train)
        scores = ranker.score(Query.for_group(parts.test.groups, int(parts.test.records["group_id"].iloc[0])), unseen)
        assert len(np.unique(scores)) == len(np.unique(buckets)) > 1, name  # one level per size bucket


def test_completion_baselines_use_the_observed_rest_of_the_group(context: Context, slice_corpus: Corpus):
    parts = make_split(slice_corpus, "completion", seed=2025).partition(slice_corpus)
    knn = evaluate(make_ranker("dataset-knn", context), parts, "completion").metrics
    mf = evaluate(make_ranker("matrix-factorisation", context), parts, "completion").metrics
    popularity = evaluate(make_ranker("popularity", context), parts, "completion").metrics
    assert knn["wtau_top"] > 0.6
    assert mf["wtau_top"] > popularity["wtau_top"]
