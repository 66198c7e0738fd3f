"""Recommendations from a model bundle: rank any candidates, or the top-k of every known model, with evidence.

The model side of the network is computed once when the bundle loads (`[M, hidden]`, spec 2.6), so a query costs one
description embedding, one query-side projection and the second MLP layer over the pool. Candidates the bundle has
never seen are cold-start inputs: [UNK] identity plus what their name says (tokens, family, size) and an embedding of
a text built from it, exactly as unseen corpus models are represented in training.
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
from lens.model import ModelFeatures, QueryFeatures
from lens.names import ModelNames, family_of, parse_size, size_bucket
from lens.neighbours import EVIDENCE_FEATURES
from lens.rankers import Query

EVIDENCE_PER_MODEL = 2
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
        # The description is embedded once per request (scores and evidence both need it) and popular ones once.
        self._vector = functools.lru_cache(maxsize=QUERY_VECTORS)(self._embed_query)

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
        """Scores of every model in the bundle's pool (the fast path)."""
        q, vector = self._query(query)
        evidence = self._evidence_of_pool(query, vector)
        with torch.no_grad():
            return self.bundle.model.score_from_parts(self.side, q, evidence).numpy()

    def rank(self, query: Query, candidates: Sequence[str] | None = None) -> dict[str, float]:
        """`{candidate: score}` for the given names (any spelling; unknown models are cold-start), or the whole pool."""
        scores = self.pool_scores(query)
        if candidates is None:
            return dict(zip(self.bundle.models["name"], scores.astype(float).tolist(), strict=True))
        keys = self.names.keys(candidates)
        rows = np.array([self.index.get(k, -1) for k in keys])
        out = np.empty(len(candidates))
        out[rows >= 0] = scores[rows[rows >= 0]]
        unknown = np.flatnonzero(rows < 0)
        if len(unknown):
            out[unknown] = self._cold_scores(query, [candidates[i] for i in unknown])
        return dict(zip(candidates, out.astype(float).tolist(), strict=True))

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
        table = self._scored(query, candidates)
        keep = np.ones(len(table), dtype=bool)
        params = table["n_parameters"].to_numpy(dtype=float)
        if max_params is not None:
            keep &= params <= max_params
        if min_params is not None:
            keep &= params >= min_params
        if licenses:
            keep &= table["license"].fillna("").str.lower().isin([x.lower() for x in licenses]).to_numpy()
        if families:
            keep &= table["family"].isin([x.lower() for x in families]).to_numpy()
        if exclude:
            keep &= ~table["key"].isin(self.names.keys(exclude)).to_numpy()
        rows = np.flatnonzero(keep)
        scores = table["score"].to_numpy()
        top = rows[np.argsort(-scores[rows], kind="stable")[:k]]
        _, vector = self._query(query)
        return [self._recommendation(table.iloc[int(r)], vector) for r in top]

    def _scored(self, query: Query, candidates: Sequence[str] | None) -> pd.DataFrame:
        """`key, name, n_parameters, license, family, score, row` of the pool or of the candidates (row -1: unseen)."""
        columns = ["key", "name", "n_parameters", "license", "family"]
        if candidates is None:
            return self.bundle.models[columns].assign(
                score=self.pool_scores(query), row=np.arange(len(self.bundle.models))
            )
        unique: dict[str, str] = {}
        for key, name in zip(self.names.keys(candidates), candidates, strict=True):
            unique.setdefault(key, name)  # the first spelling of each model
        names = list(unique.values())
        rows = [self.index.get(key, -1) for key in unique]
        meta = self.bundle.models
        scores = self.rank(query, names)
        return pd.DataFrame(
            {
                "key": list(unique),
                "name": names,
                "n_parameters": [
                    meta["n_parameters"].iat[r] if r >= 0 else parse_size(n) or math.nan
                    for r, n in zip(rows, names, strict=True)
                ],
                "license": [meta["license"].iat[r] if r >= 0 else None for r in rows],
                "family": [meta["family"].iat[r] if r >= 0 else family_of(n) for r, n in zip(rows, names, strict=True)],
                "score": [scores[n] for n in names],
                "row": rows,
            }
        )

    def _recommendation(self, item: pd.Series, vector: np.ndarray) -> Recommendation:
        params = float(item["n_parameters"])
        return Recommendation(
            model=str(item["name"]),
            score=float(item["score"]),
            n_parameters=None if math.isnan(params) else params,
            license=item["license"] if isinstance(item["license"], str) else None,
            family=str(item["family"]),
            evidence=self._evidence(int(item["row"]), vector) if item["row"] >= 0 else (),
        )

    def _evidence(self, model_id: int, vector: np.ndarray) -> tuple[Evidence, ...]:
        positions = self.by_model.get(model_id)
        if positions is None:
            return ()
        seen = self.observations.iloc[positions]
        rows = self.group_row.reindex(seen["group_id"]).to_numpy()
        similarity = self.bundle.group_vectors[rows] @ vector
        groups = self.bundle.groups
        out = []
        for i in np.argsort(-similarity, kind="stable")[:EVIDENCE_PER_MODEL]:
            obs = seen.iloc[i]
            group = groups.loc[obs["group_id"]]
            value = float(obs["value"]) if group["higher_is_better"] else -float(obs["value"])  # as published
            out.append(
                Evidence(
                    group["dataset"],
                    group["metric"],
                    round(float(similarity[i]), 3),
                    value,
                    int(obs["rank"]),
                    int(obs["of"]),
                )
            )
        return tuple(out)
