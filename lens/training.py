"""Training ModelLens: the spec 3.2 ensemble loss, seeded sampling, early stopping, and correct multi-worker runs.

One epoch shows every training record once in listwise form: each trainable group is cut at random into lists of at
most `max_list` models (a 6,795-model Open LLM Leaderboard group gives 107 lists, a 12-model group one), lists are
shuffled across groups, and each step takes `groups_per_batch` of them and draws `pair_batch_size` (better, worse)
pairs inside them. Big groups so get as much training signal per model as small ones, and the pairwise branch
reuses the lists' forward pass.

Under `torch.distributed` the network is wrapped in `DistributedDataParallel` and the *wrapped* module is called, so
gradients are all-reduced (the official code calls `ddp.module` and trains unsynchronised replicas, spec 3.6). Every
rank draws the same step plan from the same seed and keeps a disjoint shard of its lists and pairs; validation is
deterministic on identical weights, so every rank reaches the same early-stopping decision without communication.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from lens.corpus import Corpus
from lens.embeddings import Embedder
from lens.metrics import wtau_top
from lens.model import (
    Committee,
    ModelConfig,
    ModelFeatures,
    ModelLens,
    ModelSide,
    QueryFeatures,
    Vocabulary,
    from_mapping,
)
from lens.neighbours import NeighbourIndex
from lens.splits import HeldOut

log = logging.getLogger(__name__)

_PADDING_SCORE = -1e4
"""Score of empty list slots: exp() of it underflows to 0, so padding adds nothing to ListMLE's normalisers."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, sampling and loss settings (spec 2.7 / 3.2 defaults where the spec gives one)."""

    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    """Passed to AdamW (the official code drops it and gets AdamW's 0.01, spec 3.5)."""
    grad_clip: float = 5.0
    """Max global gradient norm per step."""
    max_epochs: int = 40
    """Epoch limit; with no validation part, the exact number of epochs trained."""
    patience: int = 5
    """Epochs without a better validation tau_w before stopping."""
    groups_per_batch: int = 8
    """Lists per step (the official `batch_size`: groups per listwise batch)."""
    max_list: int = 64
    """Most models per list; bigger groups are cut into several lists per epoch."""
    pair_batch_size: int = 1024
    """(better, worse) pairs per step for the BPR loss, drawn inside the step's lists."""
    alpha: float = 3.0
    """Pair weight sharpness: `w = tanh(alpha * |z_pos - z_neg|)`; a 0.1-sd gap weighs 0.29, a 1-sd gap 0.995."""
    lambda_list: float = 0.5
    lambda_pair: float = 1.0
    point_weight: float = 0.1
    """Weight of the pointwise z loss inside each branch."""
    validation_fraction: float = 0.1
    """Share of benchmark families the ranker holds out of its training corpus to select the epoch count."""
    refit: bool = True
    """Whether the ranker then retrains on its whole corpus for the selected number of epochs (else it keeps the
    selected checkpoint, trained without the held-out families)."""
    progress: bool = True
    """Show a progress bar over epochs."""

    def __post_init__(self) -> None:
        for name in ("max_epochs", "patience", "groups_per_batch", "max_list", "pair_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.max_list < 2:
            raise ValueError(f"TrainConfig.max_list must be at least 2 (a ranking), got {self.max_list}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"TrainConfig.validation_fraction must be in (0, 1), got {self.validation_fraction}")


@dataclass(frozen=True)
class LensConfig:
    """Everything that defines a ModelLens run; `configs/modellens.yaml` holds the defaults, commented."""

    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LensConfig:
        unknown = sorted(set(data) - {"model", "training"})
        if unknown:
            raise ValueError(f"unknown config section(s) {unknown}; expected 'model' and 'training'")
        return cls(
            from_mapping(ModelConfig, data.get("model") or {}), from_mapping(TrainConfig, data.get("training") or {})
        )

    @classmethod
    def from_yaml(cls, path: Path) -> LensConfig:
        """Load a YAML config; keys left out keep their defaults, unknown keys are an error."""
        try:
            return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid ModelLens config {path}: {exc}") from exc

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {"model": asdict(self.model), "training": asdict(self.training)}


# ----------------------------------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """One step's rows, list by list (row-major over `lists`, each list best first), with the pairs drawn among them.

    `better[k]` and `worse[k]` are row indices of pair k, from the same list; `z` is every row's target.
    """

    models: ModelFeatures
    queries: QueryFeatures
    lists: Tensor
    z: Tensor
    better: Tensor
    worse: Tensor
    pair_weight: Tensor

    def __post_init__(self) -> None:
        rows = int(self.lists.sum())
        if not len(self.models) == len(self.queries) == len(self.z) == rows:
            raise ValueError(
                f"Batch rows disagree: {len(self.models)} models, {len(self.queries)} queries, {len(self.z)} targets,"
                f" {rows} list slots"
            )
        if not len(self.better) == len(self.worse) == len(self.pair_weight):
            raise ValueError("Batch.better, Batch.worse and Batch.pair_weight must have one entry per pair")


def list_mle(scores: Tensor, present: Tensor) -> Tensor:
    """ListMLE (Plackett-Luce) of lists given best first: per list the mean over positions i of
    `log sum_{j >= i} exp(s_j) - s_i`, averaged over lists (spec 3.2a, the ensemble's mean-over-positions form).

    `scores` is `[B, L]`; slots where `present` is false are padding at the end of their row.
    """
    padded = torch.where(present, scores, torch.full_like(scores, _PADDING_SCORE))
    tail = torch.logcumsumexp(padded.flip(1), dim=1).flip(1)
    per_position = torch.where(present, tail - padded, torch.zeros_like(padded))
    return (per_position.sum(1) / present.sum(1)).mean()


def ensemble_loss(net: nn.Module, batch: Batch, config: TrainConfig) -> Tensor:
    """`lambda_list (L_list + w L_pt_list) + lambda_pair (L_bpr + w L_pt_pair)` (spec 3.2e).

    `net` may be the DDP wrapper. Pairs are scored on the lists' rows, so one forward pass serves both branches:
    DDP sees one forward per backward, and a step costs one row per list item instead of three.
    """
    out = net(batch.models, batch.queries)
    scores = torch.zeros(batch.lists.shape, dtype=out.score.dtype).masked_scatter(batch.lists, out.score)
    listwise = list_mle(scores, batch.lists)
    point_list = F.mse_loss(out.z, batch.z)
    better, worse, w = batch.better, batch.worse, batch.pair_weight
    bpr = (w * F.softplus(-(out.score[better] - out.score[worse]))).mean()
    point_pair = (w * ((out.z[better] - batch.z[better]) ** 2 + (out.z[worse] - batch.z[worse]) ** 2)).mean()
    return config.lambda_list * (listwise + config.point_weight * point_list) + config.lambda_pair * (
        bpr + config.point_weight * point_pair
    )


# ----------------------------------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------------------------------


class TrainingRecords:
    """Trainable records ordered by group, best first within a group, with each group's slice."""

    def __init__(self, corpus: Corpus):
        trainable = corpus.groups["trainable"].to_numpy()
        records = corpus.records[trainable[corpus.records["group_id"].to_numpy()]]
        # Best first within a group; ties in model-id order so the plan does not depend on the input's row order.
        records = records.sort_values(["group_id", "value", "model_id"], ascending=[True, False, True], kind="stable")
        self.frame = records.reset_index(drop=True)
        self.model_id = self.frame["model_id"].to_numpy()
        self.group_id = self.frame["group_id"].to_numpy()
        self.z = self.frame["z"].to_numpy(dtype=np.float32)
        self.start = np.flatnonzero(np.r_[True, self.group_id[1:] != self.group_id[:-1]])
        self.count = np.diff(np.r_[self.start, len(self.frame)])

    def lists(self, rng: np.random.Generator, max_list: int) -> list[np.ndarray]:
        """One epoch's lists: each group cut at random into ceil(n / max_list) near-equal parts, shuffled."""
        out = []
        for start, count in zip(self.start, self.count, strict=True):
            for part in np.array_split(rng.permutation(count), math.ceil(count / max_list)):
                out.append(start + np.sort(part))  # sorted positions = best first
        return [out[i] for i in rng.permutation(len(out))]

    def batch(
        self,
        models: ModelFeatures,
        queries: QueryFeatures,
        lists: list[np.ndarray],
        rng: np.random.Generator,
        config: TrainConfig,
        rank: int = 0,
        world: int = 1,
    ) -> Batch:
        """This rank's share of one step: its lists `rank::world` and the pairs drawn in them.

        Pairs are drawn for the whole step and dealt to the lists round-robin, so every rank draws the same plan
        from the same generator and keeps the pairs of its own lists.
        """
        owner = np.arange(config.pair_batch_size) % len(lists)
        length = np.array([len(rows) for rows in lists])[owner]
        i = (rng.random(len(owner)) * length).astype(np.int64)
        j = (rng.random(len(owner)) * (length - 1)).astype(np.int64)
        j += j >= i
        mine = owner % world == rank
        own_lists = lists[rank::world]
        offset = np.r_[0, np.cumsum([len(rows) for rows in own_lists])[:-1]][owner[mine] // world]
        better, worse = offset + np.minimum(i, j)[mine], offset + np.maximum(i, j)[mine]
        rows = np.concatenate(own_lists)
        lengths = np.array([len(r) for r in own_lists])
        z = self.z[rows]
        return Batch(
            models=models.take(torch.as_tensor(self.model_id[rows])),
            queries=queries.take(torch.as_tensor(self.group_id[rows])),
            lists=torch.as_tensor(np.arange(lengths.max()) < lengths[:, None]),
            z=torch.as_tensor(z),
            better=torch.as_tensor(better),
            worse=torch.as_tensor(worse),
            pair_weight=torch.as_tensor(np.tanh(config.alpha * np.abs(z[better] - z[worse]))),
        )


# ----------------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------------


class Validation:
    """Held-out groups for checkpoint selection: each group's observed candidates and their true values."""

    def __init__(self, corpus: Corpus, queries: QueryFeatures, neighbours: NeighbourIndex | None = None):
        trainable = corpus.groups["trainable"].to_numpy()
        records = corpus.records[trainable[corpus.records["group_id"].to_numpy()]]
        if records.empty:
            raise ValueError("the validation corpus has no group with two or more models of distinct values")
        records = records.sort_values(["group_id", "model_id"]).reset_index(drop=True)
        group_ids = np.unique(records["group_id"].to_numpy())
        evidence = None
        if neighbours is not None:
            weights = neighbours.weights(
                queries.description[group_ids].numpy(), corpus.groups.loc[group_ids, "task"].to_numpy()
            )
            rows = np.searchsorted(group_ids, records["group_id"].to_numpy())
            evidence = neighbours.pairs(weights, rows, records["model_id"].to_numpy())
        self.groups = []
        for _, part in records.groupby("group_id"):
            positions = part.index.to_numpy()
            self.groups.append(
                (
                    torch.tensor(part["model_id"].to_numpy()),
                    part["value"].to_numpy(),
                    None if evidence is None else torch.from_numpy(evidence[positions]),
                )
            )
        self.queries = queries.take(torch.as_tensor(group_ids))

    @torch.no_grad()
    def tau(self, model: ModelLens, models: ModelFeatures) -> float:
        """Pair-weighted mean top-weighted tau_w over the groups, re-ranking only their observed candidates."""
        side = model.model_side(models)
        query = model.query_side(self.queries)
        taus, pairs = [], []
        for row, (candidates, values, evidence) in enumerate(self.groups):
            pred = model.score_from_parts(side.take(candidates), query[row], evidence).numpy()
            taus.append(wtau_top(values, pred.astype(float)))
            pairs.append(len(values) * (len(values) - 1) / 2)
        return float(np.dot(taus, pairs) / np.sum(pairs))


# ----------------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    loss: float
    val_tau: float
    """Validation tau_w after the epoch; NaN when training without a validation part."""
    seconds: float


@dataclass
class TrainedModel:
    """A trained network (or committee of them) with what is needed to use it: its vocabulary and the features of
    its model pool."""

    model: ModelLens | Committee
    vocabulary: Vocabulary
    models: ModelFeatures
    """Features of every row of the training corpus's `models` table (cold-start models included)."""
    history: list[EpochStats]
    best_epoch: int
    """The epoch whose weights `model` holds (1-based)."""
    neighbours: NeighbourIndex | None = None
    """The training groups the network reads neighbour evidence from, if it does."""

    @classmethod
    def committee(cls, members: Sequence[TrainedModel]) -> TrainedModel:
        """The members as one `Committee`; they share the corpus, so its vocabulary, pool and neighbour index. The
        history and best epoch are the first member's (the others ran the same number of epochs or their own
        selection, as `train_committee` says)."""
        first = members[0]
        model = Committee([m.model for m in members])
        return cls(model, first.vocabulary, first.models, first.history, first.best_epoch, first.neighbours)

    def evidence(self, vectors: np.ndarray, tasks: list[str]) -> Tensor | None:
        """`[queries, models, 1]` neighbour evidence over the pool for embedded queries, if the network reads it."""
        if self.neighbours is None:
            return None
        return torch.as_tensor(self.neighbours.pool(self.neighbours.weights(vectors, tasks)))

    @torch.no_grad()
    def model_side(self) -> ModelSide:
        """The pool's precomputed model side, with the network in eval mode (serving)."""
        self.model.eval()
        return self.model.model_side(self.models)


def query_features(corpus: Corpus, vocab: Vocabulary, embedder: Embedder) -> QueryFeatures:
    """Features of every group of `corpus` (row = group id)."""
    groups = corpus.groups
    description = embedder.encode(list(groups["text"]))
    return QueryFeatures.build(list(groups["key"]), list(groups["task"]), list(groups["metric"]), description, vocab)


def neighbour_index(corpus: Corpus, records, queries: QueryFeatures, config: ModelConfig) -> NeighbourIndex:
    """The neighbour index over the groups of the training `records`, with their description vectors."""
    return NeighbourIndex.from_records(
        records,
        corpus.groups,
        queries.description.numpy(),
        len(corpus.models),
        config.neighbours,
        config.neighbour_temperature,
        config.neighbour_shrinkage,
        config.evidence_floor,
        config.evidence_full,
    )


def train(
    train: Corpus, val: Corpus | None, embedder: Embedder, config: LensConfig = LensConfig(), seed: int = 2025
) -> TrainedModel:
    """Train on `train`'s trainable groups, selecting the epoch with the best validation tau_w on `val`.

    With `val` None there is nothing to select on: exactly `max_epochs` epochs run and the last weights are kept
    (set `max_epochs` to the best epoch of a validated run with the same data size). Under an initialised
    `torch.distributed` process group, training is data-parallel over the ranks. The same seed gives the same weights.
    """
    tc = config.training
    records = TrainingRecords(train)
    if not len(records.start):
        raise ValueError("the training corpus has no group with two or more models of distinct values")
    vocab = Vocabulary.build(records.frame, train.groups, train.models)
    models = ModelFeatures.build(
        train.models, vocab, embedder.encode(list(train.models["text"])), config.model.name_buckets
    )
    queries = query_features(train, vocab, embedder)
    neighbours = None
    if config.model.uses_evidence:  # not read in training (`ModelLens`), but in validation and serving
        neighbours = neighbour_index(train, records.frame, queries, config.model)
    validation = None if val is None else Validation(val, queries, neighbours)

    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    torch.manual_seed(seed)
    model = ModelLens(config.model, vocab, models.text.shape[1])
    net: nn.Module = DistributedDataParallel(model) if distributed else model
    torch.manual_seed(seed + rank)  # dropout streams differ per rank; the initial weights do not (DDP broadcasts)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=tc.learning_rate, weight_decay=tc.weight_decay, fused=True
    )  # fused: the unfused update of the embedding tables costs more than the whole forward pass on CPU
    rng = np.random.default_rng(seed)

    history: list[EpochStats] = []
    best_tau, best_epoch, best_state = -math.inf, 0, None
    epochs = tqdm(range(1, tc.max_epochs + 1), desc="modellens", unit="epoch", disable=not tc.progress or rank > 0)
    for epoch in epochs:
        started = time.perf_counter()
        model.train()
        lists = records.lists(rng, tc.max_list)
        losses = []
        for first in range(0, len(lists), tc.groups_per_batch):
            step_lists = lists[first : first + tc.groups_per_batch]
            if len(step_lists) < world:  # a rank without a list would skip the step and stall the all-reduce
                continue
            batch = records.batch(models, queries, step_lists, rng, tc, rank, world)
            optimiser.zero_grad()
            loss = ensemble_loss(net, batch, tc)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimiser.step()
            losses.append(loss.item())
        model.eval()
        val_tau = math.nan if validation is None else validation.tau(model, models)
        history.append(EpochStats(epoch, float(np.mean(losses)), val_tau, round(time.perf_counter() - started, 2)))
        epochs.set_postfix(loss=f"{history[-1].loss:.4f}", val_tau=f"{val_tau:.4f}")
        log.info("epoch %d: loss %.4f, val tau_w %.4f, %.1f s", epoch, history[-1].loss, val_tau, history[-1].seconds)
        if validation is None:
            continue
        if val_tau > best_tau:
            best_tau, best_epoch, best_state = val_tau, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= tc.patience:
            break
    if best_state is None:
        best_epoch = len(history)
    else:
        model.load_state_dict(best_state)
    return TrainedModel(model, vocab, models, history, best_epoch, neighbours)


def hold_out_benchmarks(corpus: Corpus, fraction: float, seed: int) -> tuple[Corpus, Corpus]:
    """`(train, val)`: a seeded `fraction` of the benchmark families with records goes to `val`, at least one."""
    live = sorted(set(corpus.groups.loc[corpus.groups["n_models"] > 0, "benchmark"]))
    rng = np.random.default_rng(seed)
    held = rng.permutation(len(live))[: max(1, round(fraction * len(live)))]
    mask = HeldOut("benchmark", tuple(sorted(live[i] for i in held))).mask(corpus)
    return corpus.restrict(~mask), corpus.restrict(mask)


def member_seeds(seed: int, members: int) -> list[int]:
    """Seeds of a committee's networks: `seed` itself, then seeds spawned from it (`numpy.random.SeedSequence`), so
    that runs with nearby seeds (2025, 1, 2 in `modellens evaluate --ranker-seeds`) share no member."""
    spawned = np.random.SeedSequence(seed).spawn(members - 1)
    return [seed, *(int(s.generate_state(1)[0]) for s in spawned)]


def train_committee(
    train_part: Corpus,
    val_part: Corpus | None,
    embedder: Embedder,
    config: LensConfig,
    seed: int,
    first: TrainedModel | None = None,
) -> TrainedModel:
    """`config.model.members` networks trained alike by `train` from `member_seeds(seed)`, as one committee.
    `first`, if given, is the member of `seed` itself, already trained on the same parts."""
    seeds = member_seeds(seed, config.model.members)
    members = [first if first is not None else train(train_part, val_part, embedder, config, seeds[0])]
    members += [train(train_part, val_part, embedder, config, s) for s in seeds[1:]]
    return TrainedModel.committee(members)


def train_selected(
    corpus: Corpus, embedder: Embedder, config: LensConfig = LensConfig(), seed: int = 2025
) -> tuple[TrainedModel, TrainedModel]:
    """Train on all of `corpus` with the epoch count selected on held-out data: `(selection run, final committee)`.

    `validation_fraction` of the benchmark families is held out to select the number of epochs: whole families, like
    the `new_dataset` split, so selection favours what generalises to unseen datasets over what memorises seen ones.
    With `refit` (the default) every member of the final committee then trains on the whole corpus for that many
    epochs: the held-out families are often the only other results of many models (one Open LLM Leaderboard benchmark
    is a third of some models' records), too much to leave out of the served model. Without it, the members are
    selection runs, the first being the selection itself.
    """
    train_part, val_part = hold_out_benchmarks(corpus, config.training.validation_fraction, seed)
    selection = train(train_part, val_part, embedder, config, seed)
    if not config.training.refit:
        return selection, train_committee(train_part, val_part, embedder, config, seed, first=selection)
    epochs = replace(config.training, max_epochs=selection.best_epoch)
    return selection, train_committee(corpus, None, embedder, replace(config, training=epochs), seed)
