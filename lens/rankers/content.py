"""Rankers that read text: model-text nearest neighbour and dataset-kNN collaborative filtering.

Both embed with the same frozen encoder as ModelLens, so their gap to it measures what the learned fusion adds.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from lens.corpus import Corpus
from lens.rankers import Query, Ranker, register
from lens.rankers.statistics import TaskMeanRanker, _trainable_records


@register("text-nn", aliases=("text_nn", "metadata"))
class TextNearestRanker(Ranker):
    """Cosine of the query description and the model text (the paper's metadata-only baseline).

    Models evaluated on the query's task at least once rank ahead of those never evaluated on it (spec 8.6),
    so a retrieval query is not answered with image classifiers whose cards happen to mention "retrieval".
    """

    def fit(self, corpus: Corpus) -> TextNearestRanker:
        self.model_vectors = self.context.embedder.encode(list(corpus.models["text"]))
        records = _trainable_records(corpus)
        tasks = corpus.groups["task"].to_numpy()[records["group_id"].to_numpy()]
        self.evaluated = {task: np.unique(records["model_id"].to_numpy()[tasks == task]) for task in np.unique(tasks)}
        return self

    def score(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        vector = self.context.embedder.encode([query.text])[0]
        scores = self.model_vectors[candidates] @ vector
        on_task = np.isin(candidates, self.evaluated.get(query.task, ()))
        return scores + 2.0 * on_task  # cosine is in [-1, 1]: the bonus is a strict preference


@register("dataset-knn", aliases=("knn", "dataset_knn"))
class DatasetKnnRanker(Ranker):
    """Collaborative filtering over the k training groups whose descriptions are nearest the query's.

    `score(m) = (sum_g w_g z(m, g) + kappa * prior(m)) / (sum_{g has m} w_g + kappa)`, where the w_g are a softmax of
    description similarity over the k neighbours (same task when the task is known) and the prior is the
    task-conditional mean: models absent from every neighbour fall back to it smoothly.
    """

    def __init__(self, context, k: int = 20, temperature: float = 0.05, kappa: float = 0.3):
        super().__init__(context)
        self.k, self.temperature, self.kappa = k, temperature, kappa

    def fit(self, corpus: Corpus) -> DatasetKnnRanker:
        self.prior = TaskMeanRanker(self.context).fit(corpus)
        records = _trainable_records(corpus)
        self.group_ids = np.unique(records["group_id"].to_numpy())
        row = np.searchsorted(self.group_ids, records["group_id"].to_numpy())
        shape = (len(self.group_ids), len(corpus.models))
        self.z = sp.csr_matrix((records["z"].to_numpy(), (row, records["model_id"].to_numpy())), shape=shape)
        self.seen = sp.csr_matrix((np.ones(len(records)), (row, records["model_id"].to_numpy())), shape=shape)
        groups = corpus.groups.loc[self.group_ids]
        self.vectors = self.context.embedder.encode(list(groups["text"]))
        self.tasks = groups["task"].to_numpy()
        return self

    def neighbours(self, query: Query) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the k nearest training groups and their softmax weights."""
        sims = self.vectors @ self.context.embedder.encode([query.text])[0]
        same_task = self.tasks == query.task
        if same_task.any():
            sims = np.where(same_task, sims, -np.inf)
        k = min(self.k, int(np.isfinite(sims).sum()))
        top = np.argpartition(-sims, k - 1)[:k]
        logits = (sims[top] - sims[top].max()) / self.temperature
        weights = np.exp(logits)
        return top, weights / weights.sum()

    def score(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        rows, weights = self.neighbours(query)
        weighted_z = weights @ self.z[rows][:, candidates].toarray()
        coverage = weights @ self.seen[rows][:, candidates].toarray()
        prior = self.prior.score(query, candidates)
        return (weighted_z + self.kappa * prior) / (coverage + self.kappa)
