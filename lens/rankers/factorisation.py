"""Matrix factorisation of the (group x model) z matrix, with content-regressed factors for cold start.

`z(g, m) ~ b + b_g + b_m + u_g . v_m`, fitted full-batch on the observed training entries. A group or model with no
training records gets factors predicted by ridge regression from its text embedding (and, for models, family and
size bucket): the feature-conditioned MF of spec 8.8, which isolates what ModelLens's deep fusion adds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from lens.corpus import Corpus
from lens.rankers import Query, Ranker, register
from lens.rankers.statistics import _trainable_records


def ridge(features: np.ndarray, targets: np.ndarray, alpha: float) -> np.ndarray:
    """Closed-form ridge weights (with a bias column appended to `features`)."""
    x = np.hstack([features, np.ones((len(features), 1))])
    gram = x.T @ x + alpha * np.eye(x.shape[1])
    return np.linalg.solve(gram, x.T @ targets)


def _apply(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.hstack([features, np.ones((len(features), 1))]) @ weights


@register("matrix-factorisation", aliases=("mf", "matrix_factorization", "als"))
class MatrixFactorisationRanker(Ranker):
    def __init__(self, context, rank: int = 32, l2: float = 0.1, steps: int = 300, alpha: float = 10.0):
        super().__init__(context)
        self.rank, self.l2, self.steps, self.alpha = rank, l2, steps, alpha

    def fit(self, corpus: Corpus) -> MatrixFactorisationRanker:
        records = _trainable_records(corpus)
        group_ids, g = np.unique(records["group_id"].to_numpy(), return_inverse=True)
        m = records["model_id"].to_numpy()
        n_models = len(corpus.models)
        generator = torch.Generator().manual_seed(self.context.seed)
        u = (0.1 * torch.randn(len(group_ids), self.rank, generator=generator)).requires_grad_()
        v = (0.1 * torch.randn(n_models, self.rank, generator=generator)).requires_grad_()
        bg = torch.zeros(len(group_ids), requires_grad=True)
        bm = torch.zeros(n_models, requires_grad=True)
        gi, mi = torch.tensor(g), torch.tensor(m)
        target = torch.tensor(records["z"].to_numpy(), dtype=torch.float32)  # a copy: pandas' arrays are read-only
        optimiser = torch.optim.Adam([u, v, bg, bm], lr=0.05)
        for _ in range(self.steps):
            optimiser.zero_grad()
            pred = bg[gi] + bm[mi] + (u[gi] * v[mi]).sum(1)
            reg = self.l2 * ((u[gi] ** 2).sum(1) + (v[mi] ** 2).sum(1)).mean()
            loss = ((pred - target) ** 2).mean() + reg
            loss.backward()
            optimiser.step()
        self.group_index = dict(zip(corpus.groups["key"].to_numpy()[group_ids], range(len(group_ids)), strict=True))
        self.group_factors = torch.cat([u, bg[:, None]], 1).detach().numpy()
        model_factors = torch.cat([v, bm[:, None]], 1).detach().numpy()

        # Cold start: regress factors from content, fitted on entities that have training records.
        embedder = self.context.embedder
        group_text = embedder.encode(list(corpus.groups.loc[group_ids, "text"]))
        self.group_regression = ridge(group_text, self.group_factors, self.alpha)
        model_features = np.hstack(
            [
                embedder.encode(list(corpus.models["text"])),
                pd.get_dummies(corpus.models["family"]).to_numpy(dtype=np.float32),
                pd.get_dummies(corpus.models["size_bucket"]).to_numpy(dtype=np.float32),
            ]
        )
        seen = np.bincount(m, minlength=n_models) > 0
        weights = ridge(model_features[seen], model_factors[seen], self.alpha)
        self.model_factors = np.where(seen[:, None], model_factors, _apply(model_features, weights))
        return self

    def score(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        row = self.group_index.get(query.group)
        if row is None:
            factors = _apply(self.context.embedder.encode([query.text]), self.group_regression)[0]
        else:
            factors = self.group_factors[row]
        model = self.model_factors[candidates]
        return model[:, : self.rank] @ factors[: self.rank] + model[:, self.rank]
