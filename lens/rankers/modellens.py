"""The ModelLens ranker: the trained network behind the common `Ranker` interface.

`fit` trains on the corpus it is given, as `modellens train` does without a split (`lens.training.train_selected`:
epochs selected on held-out benchmark families, then a refit on everything).

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

    @torch.no_grad()
    def score(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        model = self.trained.model
        vector = self.context.embedder.encode([query.text])
        features = QueryFeatures.build([query.group], [query.task], [query.metric], vector, self.trained.vocabulary)
        evidence = self.trained.evidence(vector, [query.task])
        scores = model.score_from_parts(
            self.side, model.query_side(features), None if evidence is None else evidence[0]
        )
        return scores.numpy()[candidates]


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
