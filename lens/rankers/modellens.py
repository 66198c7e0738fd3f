"""The ModelLens ranker: the trained committee of networks behind the common `Ranker` interface.

`fit` trains on the corpus it is given, as `modellens train` does without a split (`lens.training.train_selected`:
epochs selected on held-out benchmark families, then each member's refit on everything).

`score` precomputes the model side of the network once for the whole pool (`corpus.models`: cold-start models get
the [UNK] ID and their real content) and does per query only the query side, the neighbour evidence and the cheap
rest of the MLP.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from lens.corpus import Corpus
from lens.model import QueryFeatures
from lens.rankers import Context, Query, Ranker, register
from lens.training import LensConfig, train_selected


@register("modellens", aliases=("ModelLens", "lens"))
class ModelLensRanker(Ranker):
    """The learned ranker of the paper (spec 2-3), with [UNK] cold-start paths and the exact decomposition."""

    def __init__(self, context: Context, config: LensConfig | None = None):
        super().__init__(context)
        self.config = config or LensConfig()

    def fit(self, corpus: Corpus) -> ModelLensRanker:
        self.selection, self.trained = train_selected(corpus, self.context.embedder, self.config, self.context.seed)
        self.side = self.trained.model_side()
        return self

    def _query(self, query: Query) -> tuple[torch.Tensor, np.ndarray]:
        """The query's first-layer contribution and its description vector (what the neighbour evidence reads)."""
        vector = self.context.embedder.encode([query.text])
        features = QueryFeatures.build([query.group], [query.task], [query.metric], vector, self.trained.vocabulary)
        return self.trained.model.query_side(features), vector

    @torch.no_grad()
    def score(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        side, vector = self._query(query)
        evidence = self.trained.evidence(vector, [query.task])
        evidence = None if evidence is None else evidence[0]
        return self.trained.model.score_from_parts(self.side, side, evidence).numpy()[candidates]

    @torch.no_grad()
    def terms(self, query: Query) -> tuple[np.ndarray, np.ndarray | None, float]:
        """The parts of `score` over the whole pool, for breakdowns of quality: the network's score, the neighbour
        evidence before trust (None when the network reads none) and the query's trust, so that `score` is
        `network + evidence_weight * trust * evidence`. Ranking by the evidence alone needs it unscaled: at trust 0
        the scaled evidence is a constant."""
        side, vector = self._query(query)
        index = self.trained.neighbours
        if index is None:
            return self.trained.model.score_from_parts(self.side, side).numpy(), None, 0.0
        weights = index.weights(vector, [query.task])
        evidence = torch.as_tensor(index.pool(weights._replace(trust=np.ones_like(weights.trust)))[0])
        network = self.trained.model.score_from_parts(self.side, side, torch.zeros_like(evidence)).numpy()
        return network, evidence[:, 0].numpy(), float(weights.trust[0])


def _ablation(name: str, **switches: bool) -> type[ModelLensRanker]:
    """A registered ModelLens variant with some views switched off (`ModelConfig.id_views` and friends)."""

    class Ablation(ModelLensRanker):
        def __init__(self, context: Context, config: LensConfig | None = None):
            config = config or LensConfig()
            super().__init__(context, replace(config, model=replace(config.model, **switches)))

    Ablation.__name__ = Ablation.__qualname__ = "ModelLens_" + "_".join(f"{k}_off" for k in switches)
    Ablation.__doc__ = f"ModelLens without {', '.join(switches)} (an ablation of the quality table)."
    return register(name)(Ablation)


_ablation("modellens-no-text", text_views=False)
_ablation("modellens-no-ids", id_views=False)
_ablation("modellens-no-evidence", evidence_view=False)
