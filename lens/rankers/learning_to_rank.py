"""LightGBM LambdaRank over cheap features: the strongest baseline the ModelLens ranker must beat.

Features of a (query, model) pair are the other baselines' scores plus model metadata. For training rows they are
computed out of fold, by benchmark family: a group's features come from rankers fitted without its benchmark, as
they would be for an unseen dataset, so the booster never learns to trust a feature that saw the label.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from lens.corpus import Corpus
from lens.rankers import Query, Ranker, register
from lens.rankers.content import DatasetKnnRanker, TextNearestRanker
from lens.rankers.statistics import GlobalMeanRanker, PopularityRanker, TaskMeanRanker, _trainable_records

FEATURES = ("task_mean", "global_mean", "knn", "text_cosine", "on_task", "log_params", "family", "popularity")


class _FeatureSet:
    """The component rankers fitted on one training corpus, and the feature matrix they produce."""

    def __init__(self, context, corpus: Corpus, family_codes: np.ndarray):
        self.task_mean = TaskMeanRanker(context).fit(corpus)
        self.global_mean = GlobalMeanRanker(context).fit(corpus)
        self.knn = DatasetKnnRanker(context).fit(corpus)
        self.text = TextNearestRanker(context).fit(corpus)
        self.popularity = PopularityRanker(context).fit(corpus)
        self.log_params = np.log10(corpus.models["n_parameters"].to_numpy(dtype=float))  # NaN = unknown size
        self.family_codes = family_codes

    def matrix(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        text = self.text.score(query, candidates)
        on_task = text > 1.5  # TextNearestRanker adds 2 to models evaluated on the task
        return np.column_stack(
            [
                self.task_mean.score(query, candidates),
                self.global_mean.score(query, candidates),
                self.knn.score(query, candidates),
                np.where(on_task, text - 2.0, text),
                on_task.astype(float),
                self.log_params[candidates],
                self.family_codes[candidates],
                np.log1p(self.popularity.score(query, candidates)),
            ]
        )


@register("lambdarank", aliases=("ltr", "lightgbm", "gbdt"))
class LambdaRankRanker(Ranker):
    def __init__(self, context, folds: int = 5, max_group: int = 200, rounds: int = 300):
        super().__init__(context)
        self.folds, self.max_group, self.rounds = folds, max_group, rounds

    def fit(self, corpus: Corpus) -> LambdaRankRanker:
        rng = np.random.default_rng(self.context.seed)
        family_codes = pd.factorize(corpus.models["family"])[0].astype(float)
        records = _trainable_records(corpus)
        benchmarks = corpus.groups["benchmark"].to_numpy()
        record_benchmark = benchmarks[records["group_id"].to_numpy()]
        names = np.unique(record_benchmark)
        fold_of = dict(zip(names, rng.permutation(len(names)) % self.folds, strict=True))
        record_fold = np.array([fold_of[b] for b in record_benchmark])

        blocks, labels, sizes = [], [], []
        for fold in range(self.folds):
            held = record_fold == fold
            if not held.any():
                continue
            features = _FeatureSet(self.context, corpus.restrict(~_mask_in(corpus, records, held)), family_codes)
            for group_id, part in records[held].groupby("group_id"):
                if len(part) > self.max_group:
                    part = part.iloc[np.sort(rng.choice(len(part), self.max_group, replace=False))]
                query = Query.for_group(corpus.groups, group_id)
                blocks.append(features.matrix(query, part["model_id"].to_numpy()))
                labels.append(_grade(part["z"].to_numpy()))
                sizes.append(len(part))
        self.booster = lgb.train(
            {
                "objective": "lambdarank",
                "metric": "ndcg",
                "learning_rate": 0.05,
                "num_leaves": 31,
                "min_data_in_leaf": 50,
                "lambdarank_truncation_level": 30,
                "num_threads": 2,
                "seed": self.context.seed,
                "deterministic": True,
                "verbosity": -1,
            },
            lgb.Dataset(
                np.vstack(blocks),
                np.concatenate(labels),
                group=sizes,
                feature_name=list(FEATURES),
                categorical_feature=["family"],
            ),
            num_boost_round=self.rounds,
        )
        self.features = _FeatureSet(self.context, corpus, family_codes)
        return self

    def score(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        return self.booster.predict(self.features.matrix(query, candidates), num_threads=2)


def _mask_in(corpus: Corpus, subset: pd.DataFrame, held: np.ndarray) -> np.ndarray:
    """Mask over all of `corpus.records` of the held-out rows of `subset` (a filtered view of it)."""
    mask = np.zeros(len(corpus.records), dtype=bool)
    mask[subset.index.to_numpy()[held]] = True
    return mask


def _grade(z: np.ndarray) -> np.ndarray:
    """Relevance grades 0-4: within-group quintiles of z (the top fifth is grade 4)."""
    pct = pd.Series(z).rank(method="average", pct=True).to_numpy()
    return np.minimum((pct * 5).astype(int), 4)
