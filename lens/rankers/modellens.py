"""The ModelLens ranker: the trained network behind the common `Ranker` interface.

`fit` trains on the corpus it is given. The evaluation harness passes only the training part of a split and has no
validation hook, so `fit` holds out `validation_fraction` of the corpus's benchmark families to select the number of
epochs: whole families, like the `new_dataset` split, so selection favours what generalises to unseen datasets rather
than what memorises seen ones. With `refit` (the default) it then retrains on the whole corpus for that many epochs,
same seed: the held-out families are often the only other results of many models (one Open LLM Leaderboard
benchmark is a third of some models' records), too much to leave out of the served model.

`score` precomputes the model side of the network once for the whole pool (`corpus.models`: cold-start models get
the [UNK] ID and their real content) and does per query only the query side and the cheap rest of the MLP.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from lens.corpus import Corpus
from lens.model import QueryFeatures
from lens.rankers import Context, Query, Ranker, register
from lens.splits import HeldOut
from lens.training import LensConfig, TrainedModel, train


def hold_out_benchmarks(corpus: Corpus, fraction: float, seed: int) -> tuple[Corpus, Corpus]:
    """`(train, val)`: a seeded `fraction` of the benchmark families with records goes to `val`, at least one."""
    live = sorted(set(corpus.groups.loc[corpus.groups["n_models"] > 0, "benchmark"]))
    rng = np.random.default_rng(seed)
    held = rng.permutation(len(live))[: max(1, round(fraction * len(live)))]
    mask = HeldOut("benchmark", tuple(sorted(live[i] for i in held))).mask(corpus)
    return corpus.restrict(~mask), corpus.restrict(mask)


@register("modellens", aliases=("ModelLens", "lens"))
class ModelLensRanker(Ranker):
    """The learned ranker of the paper (spec 2-3), with [UNK] cold-start paths and the exact decomposition."""

    def __init__(self, context: Context, config: LensConfig | None = None):
        super().__init__(context)
        self.config = config or LensConfig()

    def fit(self, corpus: Corpus) -> ModelLensRanker:
        seed, embedder, training = self.context.seed, self.context.embedder, self.config.training
        train_part, val_part = hold_out_benchmarks(corpus, training.validation_fraction, seed)
        self.selection: TrainedModel = train(train_part, val_part, embedder, self.config, seed)
        self.trained = self.selection
        if training.refit:
            epochs = replace(training, max_epochs=self.selection.best_epoch)
            self.trained = train(corpus, None, embedder, replace(self.config, training=epochs), seed)
        self.side = self.trained.model_side()
        return self

    @torch.no_grad()
    def score(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        model = self.trained.model
        vector = self.context.embedder.encode([query.text])
        features = QueryFeatures.build([query.group], [query.task], [query.metric], vector, self.trained.vocabulary)
        scores = model.score_from_parts(self.side, model.query_side(features))
        return scores.numpy()[candidates]
