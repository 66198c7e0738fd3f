"""Registered models as rankers: a bundle scored through `Recommender`, the code path serving uses.

`lens.evaluate` then scores a registered model with the same harness, groups and metrics as the baselines, and the
numbers a promotion compares are the numbers users get.
"""

from __future__ import annotations

import numpy as np

from lens.corpus import Corpus
from lens.rankers import Query, Ranker
from lens.recommender import Recommender


class BundleRanker(Ranker):
    """A trained bundle behind the `Ranker` interface.

    `fit` trains nothing (the bundle is trained already): it maps the corpus's models onto the bundle's pool by
    canonical key. A model the bundle has never seen (it arrived in a later snapshot) is scored as a cold start, by
    name, exactly as a user naming it would get.
    """

    def __init__(self, recommender: Recommender, name: str = "modellens"):
        self.recommender = recommender
        self.name = name
        self.rows = np.zeros(0, dtype=np.int64)
        self.names: list[str] = []

    def fit(self, corpus: Corpus) -> BundleRanker:
        index = self.recommender.index
        self.rows = np.array([index.get(key, -1) for key in corpus.models["key"]], dtype=np.int64)
        self.names = corpus.models["name"].tolist()
        return self

    def score(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        rows = self.rows[candidates]
        known = rows >= 0
        scores = np.empty(len(candidates))
        scores[known] = self.recommender.pool_scores(query)[rows[known]]
        if not known.all():
            unseen = [self.names[c] for c in candidates[~known]]
            by_name = self.recommender.rank(query, unseen)
            scores[~known] = [by_name[name] for name in unseen]
        return scores
