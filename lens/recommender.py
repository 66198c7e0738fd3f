"""Recommendations from a model bundle: rank any candidates, or the top-k of every known model, with evidence.

The model side of the network is computed once when the bundle loads (`[M, hidden]`, spec 2.6), so a query costs one
description embedding, one query-side projection and the second MLP layer over the pool. Candidates the bundle has
never seen are cold-start inputs: [UNK] identity plus what their name says (tokens, family, size) and an embedding of
a text built from it, exactly as unseen corpus models are represented in training.

The top-k of the whole pool (`best`, behind `recommend` and the service) takes two stages: the second MLP layer over
17K models is most of a query's cost, and nearly all of them are far from the top. Every model first gets a cheap
score, the network's score for a typical query of the task (one pool pass per task, kept) plus this query's
neighbour evidence, and only the `SHORTLIST` best of those go through the network.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lens.bundle import Bundle, load_bundle
from lens.embeddings import Embedder
from lens.model import UNK, ModelFeatures, QueryFeatures
from lens.names import ModelNames, family_of, parse_size, size_bucket
from lens.neighbours import EVIDENCE_FEATURES
from lens.rankers import Query

EVIDENCE_PER_MODEL = 2
SHORTLIST = 1024
"""Models per query the first stage of `best` passes to the network. On the 293 held-out datasets of new_dataset's
validation part, 1,024 keeps the exact top-10 in every query (512: 99.3%, 256: 98.0%), and on the full corpus's
champion in 200 of 200 real descriptions (measured by hand; no benchmark under bench/ tracks it yet)."""
QUERY_VECTORS = 1024
"""Description vectors a recommender keeps (least recently used out): repeated queries skip the encoder."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """A known dataset near the query on which the model was observed, and how it did there."""

    dataset: str
    metric: str
    similarity: float
    value: float
    rank: int
    of: int


@dataclass(frozen=True, slots=True)
class Recommendation:
    model: str
    score: float
    n_parameters: float | None
    license: str | None
    family: str
    evidence: tuple[Evidence, ...]

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "score": self.score,
            "n_parameters": self.n_parameters,
            "license": self.license,
            "family": self.family,
            "evidence": [_slots(e) for e in self.evidence],
        }


def _slots(record: object) -> dict:
    return {name: getattr(record, name) for name in record.__slots__}  # type: ignore[attr-defined]


class Recommender:
    """Serve one bundle: `rank()` for given candidates, `recommend()` for the filtered top-k of the whole pool."""

    def __init__(self, bundle: Bundle, embedder: Embedder):
        self.bundle, self.embedder = bundle, embedder
        # The corpus joined some bare names to hub ids (`models.csv.gz` hf_id); the bundle keeps only the result, so the
        # same links are rebuilt from it: asked by its displayed name, such a model must resolve to its own key.
        models = bundle.models
        linked = {n: k for n, k in zip(models["name"], models["key"], strict=True) if "/" in k and "/" not in n}
        self.names = ModelNames.build(models["name"], hf_ids=linked)
        self.index = {key: i for i, key in enumerate(bundle.models["key"])}
        with torch.no_grad():
            self.side = bundle.model.model_side(bundle.pool)
        self.neighbours = bundle.neighbours()
        obs = bundle.observations
        self.group_row = pd.Series(np.arange(len(bundle.groups)), index=bundle.groups.index)
        ranks = obs.groupby("group_id")["value"].rank(ascending=False, method="min").astype(int)
        self.observations = obs.assign(rank=ranks, of=obs.groupby("group_id")["value"].transform("size"))
        self.by_model = self.observations.groupby("model_id").indices
        # Per-request work reads these arrays, not the frames: at ~17K models pandas indexing is most of a request.
        self._pool = _Candidates.of_pool(bundle.models)
        groups = bundle.groups
        self._obs_group = self.group_row.reindex(obs["group_id"]).to_numpy()
        self._obs_value = np.where(
            groups["higher_is_better"].to_numpy(dtype=bool)[self._obs_group], obs["value"], -obs["value"]
        )  # as published
        self._obs_rank = self.observations["rank"].to_numpy()
        self._obs_of = self.observations["of"].to_numpy()
        self._group_dataset = groups["dataset"].to_numpy()
        self._group_metric = groups["metric"].to_numpy()
        # The description is embedded once per request (scores and evidence both need it) and popular ones once.
        self._vector = functools.lru_cache(maxsize=QUERY_VECTORS)(self._embed_query)
        self._typical_scores: dict[int, np.ndarray] = {}
        self._group_tasks = np.array([bundle.vocabulary.task(t) for t in groups["task"]])  # task codes, for `_typical`

    def _embed_query(self, text: str) -> np.ndarray:
        return self.embedder.encode([text], remember=False)[0]

    @classmethod
    def load(cls, path: Path, cache_dir: Path) -> Recommender:
        bundle = load_bundle(path)
        encoder, max_tokens = bundle.encoder
        return cls(bundle, Embedder(encoder, cache_dir, max_tokens))

    def _query(self, query: Query) -> tuple[torch.Tensor, np.ndarray]:
        vector = self._vector(query.text)[None]
        features = QueryFeatures.build([query.group], [query.task], [query.metric], vector, self.bundle.vocabulary)
        with torch.no_grad():
            return self.bundle.model.query_side(features), vector[0]

    def _evidence_of_pool(self, query: Query, vector: np.ndarray) -> torch.Tensor | None:
        if self.neighbours is None:
            return None
        return torch.as_tensor(self.neighbours.pool(self.neighbours.weights(vector[None], [query.task]))[0])

    def pool_scores(self, query: Query) -> np.ndarray:
        """Exact scores of every model in the bundle's pool."""
        q, vector = self._query(query)
        evidence = self._evidence_of_pool(query, vector)
        with torch.no_grad():
            return self.bundle.model.score_from_parts(self.side, q, evidence).numpy()

    def best(self, query: Query, k: int, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pool rows of the k best models (among the rows where `keep` holds), best first, and their exact scores.

        A filter applies before the first stage, so a narrow one still gets a full shortlist of models it allows.
        Ties are broken by pool order, as in `pool_scores`.
        """
        q, vector = self._query(query)
        evidence = self._evidence_of_pool(query, vector)
        rows = np.arange(len(self.index)) if keep is None else np.flatnonzero(keep)
        size = max(SHORTLIST, 4 * k)
        if len(rows) > size:
            cheap = torch.from_numpy(self._typical(query.task)[rows])
            if evidence is not None:
                cheap += self.bundle.model.config.evidence_weight * evidence[rows, 0]
            rows = np.sort(rows[torch.topk(cheap, size, sorted=False).indices.numpy()])
        scores = self._exact(q, evidence, rows)
        order = np.lexsort((rows, -scores))[:k]
        return rows[order], scores[order]

    def _typical(self, task: str) -> np.ndarray:
        """The network's score of every model for a typical query of `task`: the mean description of the task's
        known groups (of every group for an unknown task), no dataset identity, no metric, no evidence. Computed on
        the task's first query and kept: `[M]` floats per task."""
        vocabulary = self.bundle.vocabulary
        code = vocabulary.task(task)
        if code not in self._typical_scores:
            of_task = self._group_tasks == code
            known = code != UNK and bool(of_task.any())
            vectors = self.bundle.group_vectors[of_task] if known else self.bundle.group_vectors
            mean = vectors.mean(axis=0, keepdims=True)
            mean /= max(float(np.linalg.norm(mean)), 1e-12)
            typical = QueryFeatures.build([""], [task], [""], mean, vocabulary)
            model = self.bundle.model
            zero = torch.zeros(len(self.index), EVIDENCE_FEATURES)
            with torch.no_grad():
                self._typical_scores[code] = model.score_from_parts(self.side, model.query_side(typical), zero).numpy()
        return self._typical_scores[code]

    def rank(self, query: Query, candidates: Sequence[str] | None = None) -> dict[str, float]:
        """`{candidate: score}` for the given names (any spelling; unknown models are cold-start), or the whole pool."""
        if candidates is None:
            return dict(zip(self.bundle.models["name"], self.pool_scores(query).astype(float).tolist(), strict=True))
        keys = self.names.keys(candidates)
        rows = np.array([self.index.get(k, -1) for k in keys], dtype=int)
        out = np.empty(len(candidates))
        known = rows >= 0
        if known.any():
            q, vector = self._query(query)
            # Each pool row once: two spellings of one model get one score, bit for bit (a row's float sums in a
            # matmul depend on where in the batch it sits)
            unique, inverse = np.unique(rows[known], return_inverse=True)
            out[known] = self._exact(q, self._evidence_of_pool(query, vector), unique)[inverse]
        unknown = np.flatnonzero(~known)
        if len(unknown):
            out[unknown] = self._cold_scores(query, [candidates[i] for i in unknown])
        return dict(zip(candidates, out.astype(float).tolist(), strict=True))

    def _exact(self, q: torch.Tensor, evidence: torch.Tensor | None, rows: np.ndarray) -> np.ndarray:
        """The network's scores of some pool rows (the pool's evidence `[M, 1]` is taken at the same rows)."""
        side = self.side.take(torch.as_tensor(rows))
        with torch.no_grad():
            return self.bundle.model.score_from_parts(side, q, None if evidence is None else evidence[rows]).numpy()

    def _cold_scores(self, query: Query, names: list[str]) -> np.ndarray:
        families = [family_of(n) for n in names]
        table = pd.DataFrame(
            {
                "key": [f"\0unseen:{n}" for n in names],  # never in the vocabulary: the [UNK] identity
                "name": names,
                "family": families,
                "size_bucket": [size_bucket(parse_size(n)) for n in names],
            }
        )
        texts = [f"{n} | family: {f}" for n, f in zip(names, families, strict=True)]
        text = self.embedder.encode(texts, remember=False)
        features = ModelFeatures.build(table, self.bundle.vocabulary, text, self.bundle.model.config.name_buckets)
        q, _ = self._query(query)
        # A model the bundle has never seen has no records near any query: zero evidence and zero coverage.
        evidence = torch.zeros(len(names), EVIDENCE_FEATURES) if self.neighbours is not None else None
        with torch.no_grad():
            side = self.bundle.model.model_side(features)
            return self.bundle.model.score_from_parts(side, q, evidence).numpy()

    def recommend(
        self,
        query: Query,
        k: int = 10,
        max_params: float | None = None,
        licenses: Sequence[str] = (),
        families: Sequence[str] = (),
        min_params: float | None = None,
        exclude: Sequence[str] = (),
        candidates: Sequence[str] | None = None,
    ) -> list[Recommendation]:
        """The top-k of the pool, or of `candidates`, under the filters.

        Candidates and `exclude` take any spelling; unknown candidates are cold starts, described by what their name
        says (size, family) and shown without evidence. A size limit excludes models of unknown size, a license
        filter models of unknown license: a filter never lets through a model it cannot vouch for.
        """
        table = self._pool if candidates is None else self._candidates(candidates)
        keep = np.ones(len(table.key), dtype=bool)
        if max_params is not None:
            keep &= table.n_parameters <= max_params
        if min_params is not None:
            keep &= table.n_parameters >= min_params
        if licenses:
            keep &= np.isin(table.license_lower, [x.lower() for x in licenses])
        if families:
            keep &= np.isin(table.family, [x.lower() for x in families])
        if exclude:
            keep &= ~np.isin(table.key, self.names.keys(exclude))
        if candidates is None:
            top, scores = self.best(query, k, keep)
        else:
            given = self.rank(query, list(table.name))
            rows = np.flatnonzero(keep)
            scores = np.array([given[n] for n in table.name[rows]], dtype=float)
            order = np.lexsort((rows, -scores))[:k]  # best first, ties in the order given
            top, scores = rows[order], scores[order]
        vector = self._vector(query.text)  # embedded already for the scores: the LRU has it
        return [self._recommendation(table, int(i), float(s), vector) for i, s in zip(top, scores, strict=True)]

    def _candidates(self, candidates: Sequence[str]) -> _Candidates:
        """The given models, each once (first spelling), with what the pool knows of them (row -1: unseen)."""
        unique: dict[str, str] = {}
        for key, name in zip(self.names.keys(candidates), candidates, strict=True):
            unique.setdefault(key, name)  # the first spelling of each model
        names = list(unique.values())
        rows = [self.index.get(key, -1) for key in unique]
        pool = self._pool
        return _Candidates(
            key=np.array(list(unique), dtype=object),
            name=np.array(names, dtype=object),
            n_parameters=np.array(
                [
                    pool.n_parameters[r] if r >= 0 else parse_size(n) or math.nan
                    for r, n in zip(rows, names, strict=True)
                ],
                dtype=float,
            ),
            license=np.array([pool.license[r] if r >= 0 else None for r in rows], dtype=object),
            family=np.array(
                [pool.family[r] if r >= 0 else family_of(n) for r, n in zip(rows, names, strict=True)], dtype=object
            ),
            row=np.array(rows, dtype=int),
        )

    def _recommendation(self, table: _Candidates, i: int, score: float, vector: np.ndarray) -> Recommendation:
        params = float(table.n_parameters[i])
        row = int(table.row[i])
        return Recommendation(
            model=str(table.name[i]),
            score=score,
            n_parameters=None if math.isnan(params) else params,
            license=table.license[i],
            family=str(table.family[i]),
            evidence=self._evidence(row, vector) if row >= 0 else (),
        )

    def _evidence(self, model_id: int, vector: np.ndarray) -> tuple[Evidence, ...]:
        positions = self.by_model.get(model_id)
        if positions is None:
            return ()
        groups = self._obs_group[positions]
        similarity = self.bundle.group_vectors[groups] @ vector
        best = np.argsort(-similarity, kind="stable")[:EVIDENCE_PER_MODEL]
        return tuple(
            Evidence(
                self._group_dataset[groups[i]],
                self._group_metric[groups[i]],
                round(float(similarity[i]), 3),
                float(self._obs_value[positions[i]]),
                int(self._obs_rank[positions[i]]),
                int(self._obs_of[positions[i]]),
            )
            for i in best
        )


@dataclass(frozen=True)
class _Candidates:
    """What `recommend` filters and shows, as arrays aligned with the scores: the pool, or a request's candidates."""

    key: np.ndarray
    name: np.ndarray
    n_parameters: np.ndarray
    license: np.ndarray
    family: np.ndarray
    row: np.ndarray
    """Row in the pool, -1 for a model the bundle never saw."""

    @functools.cached_property
    def license_lower(self) -> np.ndarray:
        return np.array([x.lower() if isinstance(x, str) else "" for x in self.license], dtype=object)

    @classmethod
    def of_pool(cls, models: pd.DataFrame) -> _Candidates:
        return cls(
            key=models["key"].to_numpy(dtype=object),
            name=models["name"].to_numpy(dtype=object),
            n_parameters=models["n_parameters"].to_numpy(dtype=float),
            license=np.array([x if isinstance(x, str) else None for x in models["license"]], dtype=object),
            family=models["family"].to_numpy(dtype=object),
            row=np.arange(len(models)),
        )
