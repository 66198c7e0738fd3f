"""Neighbour evidence: how each model did on the known datasets whose descriptions are nearest the query's.

A learned latent space alone has to squeeze every model's record into a few dozen numbers, and on the
`new_dataset` split it loses to plain dataset-kNN on the top of the ranking (NDCG@10 0.892 against 0.903): the
records of the nearest known datasets are sharper evidence about a model than its embedding. So the network also
reads, for each (query, model) pair, two numbers retrieved from those records (spec 8.7's neighbour score, made an
input rather than a rival):

    evidence(q, m) = sum_g w_g z(m, g) / (coverage(q, m) + kappa)      coverage(q, m) = sum_{g observed m} w_g

over the k known groups nearest the query (same task when the task is known), with softmax weights `w_g` of
description similarity. A model with no record near the query has evidence 0 and coverage 0, and the network
falls back to its content and ID views. In training, a group's neighbours never come from its own benchmark
family, so the network learns how far to trust evidence about a dataset it has not seen, as in serving.

The evidence enters the network's first layer as a rank-2 term per pair, so the exact model/query decomposition of
spec 2.6 still holds: serving adds one sparse `[k, M]` product per query.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

EVIDENCE_FEATURES = 2
"""Per-pair inputs: shrunk neighbour mean z, and the neighbours' similarity weight that observed the model."""

_CHUNK = 256
"""Queries per dense `[chunk, M]` block when gathering evidence for training pairs (about 17 MB at 17K models)."""


class NeighbourIndex:
    """Known groups (description vectors, tasks, benchmark families) and their records as a sparse z matrix.

    `z` is `[groups, models]` over the index's groups (row order of `vectors`) and every model of the pool.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        tasks: Sequence[str],
        z: sp.csr_matrix,
        k: int,
        temperature: float,
        shrinkage: float,
        benchmarks: Sequence[str] | None = None,
    ):
        if not len(vectors) == len(tasks) == z.shape[0]:
            raise ValueError(f"NeighbourIndex: {len(vectors)} vectors, {len(tasks)} tasks, {z.shape[0]} z rows")
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self._task_codes = {t: i for i, t in enumerate(dict.fromkeys(tasks))}
        self.tasks = self._codes(tasks, self._task_codes)
        self._benchmark_codes = {b: i for i, b in enumerate(dict.fromkeys(() if benchmarks is None else benchmarks))}
        self.benchmarks = None if benchmarks is None else self._codes(benchmarks, self._benchmark_codes)
        self.z = z.tocsr()
        self.seen = self.z.copy()
        self.seen.data = np.ones_like(self.seen.data)
        self.k, self.temperature, self.shrinkage = k, temperature, shrinkage

    @classmethod
    def from_records(
        cls,
        records,
        groups,
        vectors: np.ndarray,
        n_models: int,
        k: int,
        temperature: float,
        shrinkage: float,
    ) -> NeighbourIndex:
        """The index over the groups of a records table (`group_id`, `model_id`, `z`).

        `groups` is indexed by group id (a `Corpus.groups` table or a bundle's) and `vectors` row-aligned with it.
        """
        ids = np.unique(records["group_id"].to_numpy())
        rows = np.searchsorted(ids, records["group_id"].to_numpy())
        z = sp.csr_matrix(
            (records["z"].to_numpy(dtype=np.float64), (rows, records["model_id"].to_numpy())),
            shape=(len(ids), n_models),
        )
        position = groups.index.get_indexer(ids)
        known = groups.iloc[position]
        benchmarks = known["benchmark"].to_numpy() if "benchmark" in known else None
        return cls(vectors[position], known["task"].to_numpy(), z, k, temperature, shrinkage, benchmarks)

    @staticmethod
    def _codes(values: Sequence[str], codes: dict[str, int]) -> np.ndarray:
        """Integer codes of `values`; -2 for a value the index does not know (it matches no group)."""
        return np.fromiter((codes.get(v, -2) for v in values), dtype=np.int64, count=len(values))

    def __len__(self) -> int:
        return len(self.vectors)

    def weights(
        self, vectors: np.ndarray, tasks: Sequence[str], exclude_benchmarks: Sequence[str] | None = None
    ) -> sp.csr_matrix:
        """`[queries, groups]` softmax weights over each query's k nearest groups (same task if any is known),
        never from the query's own benchmark family when `exclude_benchmarks` names it."""
        sims = np.asarray(vectors, dtype=np.float32) @ self.vectors.T
        if exclude_benchmarks is not None and self.benchmarks is not None:
            excluded = self._codes(exclude_benchmarks, self._benchmark_codes)
            sims[excluded[:, None] == self.benchmarks[None, :]] = -np.inf
        same_task = self._codes(tasks, self._task_codes)[:, None] == self.tasks[None, :]
        restrict = (same_task & np.isfinite(sims)).any(axis=1)
        sims[restrict[:, None] & ~same_task] = -np.inf
        k = min(self.k, len(self))
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        live = np.isfinite(top_sims)
        best = np.where(live, top_sims, -np.inf).max(axis=1, keepdims=True)
        weights = np.where(live, np.exp((top_sims - np.where(np.isfinite(best), best, 0.0)) / self.temperature), 0.0)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
        rows = np.repeat(np.arange(len(top)), k)
        return sp.csr_matrix((weights.ravel(), (rows, top.ravel())), shape=(len(top), len(self)))

    def _features(self, weighted_z: np.ndarray, coverage: np.ndarray) -> np.ndarray:
        evidence = weighted_z / (coverage + self.shrinkage)
        return np.stack([evidence, coverage], axis=-1).astype(np.float32)

    def pool(self, weights: sp.csr_matrix) -> np.ndarray:
        """`[queries, models, 2]` evidence for every model of the pool."""
        return self._features((weights @ self.z).toarray(), (weights @ self.seen).toarray())

    def pairs(self, weights: sp.csr_matrix, queries: np.ndarray, models: np.ndarray) -> np.ndarray:
        """`[pairs, 2]` evidence for (query row of `weights`, model) pairs, in chunks of queries."""
        out = np.zeros((len(queries), EVIDENCE_FEATURES), dtype=np.float32)
        for first in range(0, weights.shape[0], _CHUNK):
            block = weights[first : first + _CHUNK]
            mine = np.flatnonzero((queries >= first) & (queries < first + _CHUNK))
            if not len(mine):
                continue
            rows, cols = queries[mine] - first, models[mine]
            weighted_z = (block @ self.z).toarray()[rows, cols]
            coverage = (block @ self.seen).toarray()[rows, cols]
            out[mine] = self._features(weighted_z, coverage)
        return out
