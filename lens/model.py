"""The ModelLens network (spec 2) with the spec's fixes, its vocabulary and its typed input features.

A score for (model, query) comes from one MLP over the concatenated views of both sides. Its first layer is linear,
so it splits exactly into a model part and a query part (spec 2.6): `model_side` runs once per model pool and
`query_side` once per query, and `score_from_parts` does the rest. `forward` is built from the same three functions,
so training and serving cannot drift apart.

Fixes over the official code: identity lookups (`id_index`) fall back to a trained [UNK] row for anything unseen in
training while the content views (name, text, size, family, description) always describe the real entity (spec
2.3, 7.5); one LayerNorm per view so no view dominates by scale (spec 7.7); no dead parameters (spec 7.6); the
temperature is initialised from the config (spec 2.5). Frozen text vectors travel in the features, not in the module,
so the weights do not depend on the candidate pool and a model added later needs no new weights.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from lens.names import NUM_SIZE_BUCKETS, UNKNOWN_FAMILY
from lens.neighbours import EVIDENCE_FEATURES

UNK = 0
"""Index of the [UNK] row in the model, group, task and metric tables."""

MAX_NAME_TOKENS = 16
"""Name tokens kept per model: real names have fewer; a few free-text "names" from paper tables have dozens."""

_NAME_SEPARATORS = re.compile(r"[/_\-\s]+")


_Config = TypeVar("_Config")


def from_mapping(cls: type[_Config], data: Mapping[str, Any]) -> _Config:
    """Build a config dataclass from a mapping, refusing keys it does not know (a typo must not pass silently)."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; known keys: {sorted(known)}")
    return cls(**data)


@dataclass(frozen=True)
class ModelConfig:
    """Widths and regularisation of the network, sized for scoring 17K models in well under 20 ms on 2 CPU cores.

    The official widths (1536-d ID tables, 512-d hidden, spec 2.7) cost 100M parameters for a few hundred thousand
    records here; these are the scale of the corpus.
    """

    id_dim: int = 64
    """Learned model-ID embedding."""
    token_dim: int = 64
    """Hashed name-token embedding."""
    name_buckets: int = 16384
    """Hash buckets for name tokens (the official 10K collide heavily, spec 7.8)."""
    size_dim: int = 16
    family_dim: int = 16
    group_id_dim: int = 64
    """Learned dataset-group-ID embedding."""
    task_dim: int = 32
    metric_dim: int = 32
    hidden: int = 128
    """Width of both MLP layers; the prior MLP uses half."""
    dropout: float = 0.1
    """Dropout after the first MLP layer."""
    model_id_dropout: float = 0.1
    """Per-sample probability, in training, of replacing a model's ID with [UNK] (trains the cold-start row)."""
    group_id_dropout: float = 0.5
    """The same for the query's group ID. Higher than the official 0.1 because every new-dataset query takes the
    [UNK] path, and only rows without their group ID teach the network to read the description (on the
    new_dataset validation part: top-weighted tau_w 0.763 at 0.5 against 0.757 at 0.1 after 8 epochs)."""
    context_dropout: float = 0.1
    """The same for the query's task and metric, so their unknown rows are trained for unseen tasks and metrics."""
    embedding_init_std: float = 0.05
    """Init std of every learned table. LayerNorm makes a view scale-free, so this sets the tables' effective
    learning rate (Adam moves a row about `learning_rate` per update, relative to this): a model's ID row gets only
    a few updates per epoch, and N(0, 1) rows barely move from their random init in 25 epochs."""
    temperature: float = 1.0
    """Initial value of the learnable temperature dividing the score."""
    members: int = 1
    """Networks in the served model (`Committee`): one selection run picks the epoch count, then each member
    trains from its own seed for that many epochs, and the committee scores as the mean of their scores. Two
    against one (means over ranker seeds 2025, 1, 2; τw top / NDCG@10 / Hit@1 / regret@1): new_model 0.704 / 0.900
    / 0.512 / 0.150 against 0.696 / 0.894 / 0.496 / 0.150; new_dataset 0.687 / 0.909 / 0.299 / 0.103 against 0.687
    / 0.907 / 0.293 / 0.105; completion 0.749 against 0.751. One by default: every member is one more refit on the
    whole corpus (bench/results/ranker.md, 2 torch threads: a 31-epoch selection run at 12.2 s an epoch, then a
    26-epoch refit at 19.2 s, 882 s of the 15-minute budget; a second refit would add about 500 s) and the exact
    per-query work grows with the members. Averaging networks that also had their own selection (their own
    held-out families and epoch count) gained more on new_dataset (+0.003 τw top on test over the two members'
    mean, four networks, all six pairs), though a steadier epoch count alone (a moving average of the weights,
    tried and not kept) left its τw top where it was."""
    neighbours: int = 20
    """Known groups nearest the query that the neighbour evidence reads (`lens.neighbours`)."""
    neighbour_temperature: float = 0.05
    """Softmax temperature over the neighbours' description cosine similarities."""
    neighbour_shrinkage: float = 0.3
    """Pseudo-weight shrinking a model's neighbour mean z towards its mean z on the query's task."""
    evidence_weight: float = 24.0
    """Weight of the neighbour evidence added to the network's score. Fixed, not learned: in training the ID and
    description paths have seen the very group they score and look better than they are on a new dataset, so a
    learned weight decays (1.1 -> 0.6 in 12 epochs) and the network drifts away from the evidence it needs there.
    Chosen on the new_dataset split's validation part (293 groups; the network trained on its train part, so the
    weight only moves the stacked score; tau_w top / NDCG@10 / Hit@1 / regret@1): 8 0.769 / 0.910 / 0.358 / 0.116,
    16 0.766 / 0.911 / 0.355 / 0.110, 24 0.764 / 0.912 / 0.358 / 0.106, 32 0.763 / 0.911 / 0.352 / 0.108, 48 0.762 /
    0.912 / 0.352 / 0.108; the best baseline there on all four, dataset-kNN, 0.759 / 0.909 / 0.348 / 0.108 (matrix
    factorisation 0.715 / 0.870 / 0.256 / 0.169). Weights 20 to 48 beat it on all four; 24 has the lowest regret and
    the best NDCG@10. Larger weights trade tau_w for regret: the network ranks the big groups (the Open LLM
    Leaderboard, where the ID view knows the LLMs' global order) better than the evidence, while on MTEB's tasks
    the evidence picks the best model more often. Against 0.742 / 0.901 / 0.287 / 0.134 with the evidence read by
    the first layer and a learned weight."""
    evidence_floor: float = 0.5
    """Cosine similarity of the query's nearest known group at or below which the evidence has no weight."""
    evidence_full: float = 0.9
    """Similarity from which it has its full weight (linear in between: the trust of `lens.neighbours`, whose
    docstring gives the selection-data numbers behind both bounds)."""
    id_views: bool = True
    """Learned model and group ID views (off: the "no ID views" ablation, a pure content model)."""
    text_views: bool = True
    """Frozen text views: model text, dataset description, and the neighbour evidence retrieved by it (off: the
    "no text views" ablation)."""
    evidence_view: bool = True
    """The per-pair neighbour evidence term of the score (off: the published architecture alone)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise ValueError(f"ModelConfig.{f.name} must be true or false, got {value!r}")
            if f.type == "int" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"ModelConfig.{f.name} must be a positive integer, got {value!r}")
        if not -1.0 <= self.evidence_floor < self.evidence_full <= 1.0:
            raise ValueError(
                "ModelConfig needs -1 <= evidence_floor < evidence_full <= 1 (cosine similarities), got"
                f" {self.evidence_floor!r} and {self.evidence_full!r}"
            )
        for name in ("dropout", "model_id_dropout", "group_id_dropout", "context_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"ModelConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        positive = (
            "embedding_init_std",
            "temperature",
            "neighbour_temperature",
            "neighbour_shrinkage",
            "evidence_weight",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"ModelConfig.{name} must be positive, got {getattr(self, name)!r}")

    @property
    def uses_evidence(self) -> bool:
        """Whether the network reads neighbour evidence (retrieved by description, so a text view)."""
        return self.evidence_view and self.text_views


# ----------------------------------------------------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    """What the network has rows for: the entities seen in training.

    Models, groups, tasks and metrics map to `1 + position`; anything else maps to `UNK` (0). Families have no [UNK]
    row: a family never seen in training maps to the `unknown` family, which is trained on real models whose family
    could not be determined, and means the same thing.
    """

    models: tuple[str, ...]
    groups: tuple[str, ...]
    tasks: tuple[str, ...]
    metrics: tuple[str, ...]
    families: tuple[str, ...]
    _index: dict[str, dict[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if UNKNOWN_FAMILY not in self.families:
            raise ValueError(f"Vocabulary.families must contain {UNKNOWN_FAMILY!r}, the fallback of unseen families")
        index = {}
        for name in ("models", "groups", "tasks", "metrics"):
            entries = getattr(self, name)
            if len(set(entries)) != len(entries):
                raise ValueError(f"Vocabulary.{name} has duplicate entries")
            index[name] = {key: i + 1 for i, key in enumerate(entries)}
        index["families"] = {key: i for i, key in enumerate(self.families)}
        object.__setattr__(self, "_index", index)

    @classmethod
    def build(cls, records: pd.DataFrame, groups: pd.DataFrame, models: pd.DataFrame) -> Vocabulary:
        """The vocabulary of training `records` (a `Corpus.records` table) over their group and model tables."""
        group_ids = np.unique(records["group_id"].to_numpy())
        model_ids = np.unique(records["model_id"].to_numpy())
        seen = groups.loc[group_ids]
        return cls(
            models=tuple(models.loc[model_ids, "key"]),
            groups=tuple(seen["key"]),
            tasks=tuple(sorted(set(seen["task"]))),
            metrics=tuple(sorted(set(seen["metric"]))),
            families=tuple(sorted(set(models.loc[model_ids, "family"]) | {UNKNOWN_FAMILY})),
        )

    def model(self, key: str) -> int:
        return self._index["models"].get(key, UNK)

    def group(self, key: str) -> int:
        return self._index["groups"].get(key, UNK)

    def task(self, name: str) -> int:
        return self._index["tasks"].get(name, UNK)

    def metric(self, name: str) -> int:
        return self._index["metrics"].get(name, UNK)

    def family(self, name: str) -> int:
        families = self._index["families"]
        return families.get(name, families[UNKNOWN_FAMILY])

    def to_dict(self) -> dict[str, list[str]]:
        """A JSON-ready form; `from_dict` restores an equal vocabulary (row order included)."""
        return {name: list(getattr(self, name)) for name in ("models", "groups", "tasks", "metrics", "families")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[str]]) -> Vocabulary:
        return cls(**{name: tuple(data[name]) for name in ("models", "groups", "tasks", "metrics", "families")})


# ----------------------------------------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------------------------------------


def name_tokens(name: str) -> list[str]:
    """Spec 2.2 name tokens without the whole-name tokens: lower-cased parts split at `/ _ -` and whitespace.

    The official tokenizer also emits the full name and its repo part. Those are hashed IDs in disguise: they survive
    ID dropout, so the network can memorise a model without its ID and the [UNK] path never learns to read content
    (spec 7.8). Dropping them leaves a pure content view (`meta`, `llama`, `2`, `7b`, `hf`) that an unseen
    `someone/llama-2-7b-finetune` shares with its relatives. `.` is not a separator, so `qwen2.5` stays one token.
    """
    return list(dict.fromkeys(t for t in _NAME_SEPARATORS.split(name.strip().lower()) if t))


def token_bucket(token: str, buckets: int) -> int:
    """Stable hash bucket of a token (md5, as the official encoder): the same across processes and machines."""
    return int(hashlib.md5(token.encode("utf-8")).hexdigest(), 16) % buckets


def _long(values: Iterable[int]) -> Tensor:
    return torch.tensor(list(values), dtype=torch.long)


@dataclass(frozen=True)
class ModelFeatures:
    """Inputs of the model side for `n` models (one row each).

    `id_index` is the vocabulary row ([UNK] for models unseen in training); the other fields always describe the
    real model. `name_tokens` is `[n, t]`, padded with the bucket count (the padding row of the name table).
    """

    id_index: Tensor
    name_tokens: Tensor
    text: Tensor
    size_bucket: Tensor
    family: Tensor

    def __post_init__(self) -> None:
        n = len(self.id_index)
        for f in fields(self):
            if len(getattr(self, f.name)) != n:
                raise ValueError(f"ModelFeatures.{f.name} has {len(getattr(self, f.name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.id_index)

    def take(self, rows: Tensor) -> ModelFeatures:
        """The features of `rows` (repeats allowed: one row per training sample)."""
        return ModelFeatures(*(getattr(self, f.name)[rows] for f in fields(self)))

    @classmethod
    def build(cls, models: pd.DataFrame, vocab: Vocabulary, text: np.ndarray, name_buckets: int) -> ModelFeatures:
        """Features of every row of a `Corpus.models` table; `text` holds the embedded `models["text"]`, row-aligned."""
        tokens = [[token_bucket(t, name_buckets) for t in name_tokens(n)[:MAX_NAME_TOKENS]] for n in models["name"]]
        width = max(1, max(map(len, tokens), default=0))
        padded = np.full((len(tokens), width), name_buckets, dtype=np.int64)
        for row, ids in enumerate(tokens):
            padded[row, : len(ids)] = ids
        return cls(
            id_index=_long(vocab.model(k) for k in models["key"]),
            name_tokens=torch.from_numpy(padded),
            text=torch.as_tensor(np.asarray(text, dtype=np.float32)),
            size_bucket=torch.tensor(models["size_bucket"].to_numpy(dtype=np.int64)),
            family=_long(vocab.family(f) for f in models["family"]),
        )


@dataclass(frozen=True)
class QueryFeatures:
    """Inputs of the query side for `n` queries: group ID ([UNK] if unseen), description vector, task, metric."""

    id_index: Tensor
    description: Tensor
    task: Tensor
    metric: Tensor

    def __post_init__(self) -> None:
        n = len(self.id_index)
        for f in fields(self):
            if len(getattr(self, f.name)) != n:
                raise ValueError(f"QueryFeatures.{f.name} has {len(getattr(self, f.name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.id_index)

    def take(self, rows: Tensor) -> QueryFeatures:
        return QueryFeatures(*(getattr(self, f.name)[rows] for f in fields(self)))

    @classmethod
    def build(
        cls,
        keys: Sequence[str],
        tasks: Sequence[str],
        metrics: Sequence[str],
        description: np.ndarray,
        vocab: Vocabulary,
    ) -> QueryFeatures:
        """Features of queries given by group key, task and metric, with their embedded description texts."""
        return cls(
            id_index=_long(vocab.group(k) for k in keys),
            description=torch.as_tensor(np.asarray(description, dtype=np.float32)),
            task=_long(vocab.task(t) for t in tasks),
            metric=_long(vocab.metric(m) for m in metrics),
        )


# ----------------------------------------------------------------------------------------------------------------------
# Network
# ----------------------------------------------------------------------------------------------------------------------


class ModelSide(NamedTuple):
    """Per-model parts of the score: the first layer's pre-activation contribution and the structural prior."""

    pre: Tensor
    prior: Tensor

    def take(self, rows: Tensor) -> ModelSide:
        # index_select, not `pre[rows]`: a fifth of the time for a 1,024-row shortlist (serving's second stage)
        return ModelSide(self.pre.index_select(0, rows), self.prior.index_select(0, rows))


class Output(NamedTuple):
    """Ranking score (temperature applied) and the pointwise z prediction, one per (model, query) row."""

    score: Tensor
    z: Tensor


class ModelLens(nn.Module):
    """Score (model, query) pairs: views -> LayerNorm each -> MLP -> pairwise score + prior, and a z head.

    ```
    pre   = W_model [id, name, text, size, family] + W_query [group id, description, task, metric] + b
    h     = ReLU(W2 Dropout(ReLU(pre)) + b2)
    score = (head(h) + prior(size, family)) / max(T, 1e-3) + evidence_weight * trust * evidence        z = z_head(h)
    ```
    The network is trained without the evidence term (`forward` without evidence) and the term is added when
    scoring: a kNN ranker and the network stacked with a fixed weight. Trained together, the network learns to
    lean on its ID and description paths, which have seen every training group, and becomes worse than either on
    new datasets. The ablation switches of `ModelConfig` remove views (and their parameters) from this picture.
    """

    def __init__(self, config: ModelConfig, vocab: Vocabulary, text_dim: int):
        super().__init__()
        self.config = config
        c = config
        model_dims = {"id": c.id_dim, "name": c.token_dim, "text": text_dim, "size": c.size_dim, "family": c.family_dim}
        query_dims = {"id": c.group_id_dim, "description": text_dim, "task": c.task_dim, "metric": c.metric_dim}
        if not c.id_views:
            del model_dims["id"], query_dims["id"]
        if not c.text_views:
            del model_dims["text"], query_dims["description"]
        tables = {}
        if c.id_views:
            tables["model_id"] = nn.Embedding(len(vocab.models) + 1, c.id_dim)
            tables["group_id"] = nn.Embedding(len(vocab.groups) + 1, c.group_id_dim)
        self.name = nn.EmbeddingBag(c.name_buckets + 1, c.token_dim, mode="mean", padding_idx=c.name_buckets)
        tables.update(
            size=nn.Embedding(NUM_SIZE_BUCKETS, c.size_dim),
            family=nn.Embedding(len(vocab.families), c.family_dim),
            task=nn.Embedding(len(vocab.tasks) + 1, c.task_dim),
            metric=nn.Embedding(len(vocab.metrics) + 1, c.metric_dim),
        )
        for key, table in tables.items():
            setattr(self, key, table)
        self.model_norms = nn.ModuleDict({k: nn.LayerNorm(d) for k, d in model_dims.items()})
        self.query_norms = nn.ModuleDict({k: nn.LayerNorm(d) for k, d in query_dims.items()})
        # The first layer, split by side; the query part carries the bias, so the model part is a pure projection.
        self.model_in = nn.Linear(sum(model_dims.values()), c.hidden, bias=False)
        self.query_in = nn.Linear(sum(query_dims.values()), c.hidden)
        self.dropout = nn.Dropout(c.dropout)
        self.layer2 = nn.Linear(c.hidden, c.hidden)
        self.score_head = nn.Linear(c.hidden, 1)
        self.z_head = nn.Linear(c.hidden, 1)
        self.prior = nn.Sequential(
            nn.Linear(c.size_dim + c.family_dim, c.hidden // 2), nn.ReLU(), nn.Linear(c.hidden // 2, 1)
        )
        self.temperature = nn.Parameter(torch.tensor(float(c.temperature)))
        for table in (self.name, *tables.values()):
            nn.init.normal_(table.weight, std=c.embedding_init_std)
        with torch.no_grad():
            self.name.weight[c.name_buckets].zero_()  # the padding row stays zero (and gets no gradient)

    def _drop_ids(self, index: Tensor, p: float) -> Tensor:
        """In training, replace each index by [UNK] with probability `p`, independently per sample (spec 2.3)."""
        if not self.training or p == 0.0:
            return index
        return index.masked_fill(torch.rand(index.shape) < p, UNK)

    def model_views(self, features: ModelFeatures) -> tuple[Tensor, Tensor]:
        """The normalised model views, concatenated, and the (size, family) part the prior reads."""
        views = {}
        if self.config.id_views:
            views["id"] = self.model_id(self._drop_ids(features.id_index, self.config.model_id_dropout))
        views["name"] = self.name(features.name_tokens)
        if self.config.text_views:
            views["text"] = features.text
        views["size"] = self.size(features.size_bucket)
        views["family"] = self.family(features.family)
        normed = {key: self.model_norms[key](view) for key, view in views.items()}
        return torch.cat(list(normed.values()), dim=1), torch.cat([normed["size"], normed["family"]], dim=1)

    def query_views(self, features: QueryFeatures) -> Tensor:
        """The normalised query views, concatenated."""
        c = self.config
        views = {}
        if c.id_views:
            views["id"] = self.group_id(self._drop_ids(features.id_index, c.group_id_dropout))
        if c.text_views:
            views["description"] = features.description
        views["task"] = self.task(self._drop_ids(features.task, c.context_dropout))
        views["metric"] = self.metric(self._drop_ids(features.metric, c.context_dropout))
        return torch.cat([self.query_norms[key](view) for key, view in views.items()], dim=1)

    def model_side(self, features: ModelFeatures) -> ModelSide:
        """Per-model work, done once per pool at inference: `[M, hidden]` pre-activations and `[M]` priors."""
        views, structure = self.model_views(features)
        return ModelSide(self.model_in(views), self.prior(structure).squeeze(1))

    def query_side(self, features: QueryFeatures) -> Tensor:
        """Per-query work: the query's `[n, hidden]` first-layer contribution, bias included."""
        return self.query_in(self.query_views(features))

    def _hidden(self, model_pre: Tensor, query: Tensor) -> Tensor:
        """Both MLP layers. Fused and in place on tensors created here: at 50K models each extra `[M, hidden]` pass
        costs as much as the second layer's matmul, and this is the whole per-query cost of serving."""
        hidden = self.dropout((model_pre + query).relu_())
        return torch.addmm(self.layer2.bias, hidden, self.layer2.weight.T).relu_()

    def _score(self, hidden: Tensor, prior: Tensor, evidence: Tensor | None) -> Tensor:
        score = torch.addmv(prior, hidden, self.score_head.weight[0]).add_(self.score_head.bias)
        score = score / self.temperature.clamp(min=1e-3)
        if evidence is not None and self.config.uses_evidence:
            score = score + self.config.evidence_weight * evidence[..., 0]
        return score

    def score_from_parts(self, side: ModelSide, query: Tensor, evidence: Tensor | None = None) -> Tensor:
        """Scores of every model in `side` for one query (`[hidden]` or `[1, hidden]`), or row-aligned scores when
        `query` has one row per model. `evidence` is `[models, 1]` (`lens.neighbours`), if the network reads it."""
        if self.config.uses_evidence and evidence is None:
            raise ValueError(f"this network adds neighbour evidence: pass `[rows, {EVIDENCE_FEATURES}]` evidence")
        return self._score(self._hidden(side.pre, query), side.prior, evidence)

    def forward(self, models: ModelFeatures, queries: QueryFeatures, evidence: Tensor | None = None) -> Output:
        """Row-aligned (model, query) pairs, through the same parts as serving. Training passes no evidence: the
        network learns what it can say without it, and the evidence term is stacked on top when scoring."""
        side = self.model_side(models)
        hidden = self._hidden(side.pre, self.query_side(queries))
        return Output(self._score(hidden, side.prior, evidence), self.z_head(hidden).squeeze(-1))


class Committee(nn.Module):
    """`ModelConfig.members` networks trained alike from different seeds, scoring as the mean of their scores.

    Why: one network's order of the big Open LLM Leaderboard groups moves with its seed as much as two rankers
    differ (τw top on `new_dataset` spans 0.685-0.691 over three seeds); what averaging gains and costs is in
    `ModelConfig.members`. The members' parts are concatenated along the hidden axis, so a committee's `ModelSide` is
    one `[M, members * hidden]` tensor (and `[M, members]` priors) that `take` and every caller use as for one
    network; the decomposition stays exact member by member.
    """

    def __init__(self, members: Sequence[ModelLens]):
        super().__init__()
        if not members:
            raise ValueError("a committee needs at least one network")
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    @classmethod
    def build(cls, config: ModelConfig, vocab: Vocabulary, text_dim: int, members: int) -> Committee:
        """`members` untrained networks of the shape `config` describes (to load a bundle's weights into)."""
        return cls([ModelLens(config, vocab, text_dim) for _ in range(members)])

    def _parts(self, side: ModelSide, query: Tensor) -> Iterable[tuple[ModelLens, ModelSide, Tensor]]:
        h = self.config.hidden
        for k, member in enumerate(self.members):
            yield member, ModelSide(side.pre[:, k * h : (k + 1) * h], side.prior[:, k]), query[..., k * h : (k + 1) * h]

    def model_side(self, features: ModelFeatures) -> ModelSide:
        sides = [member.model_side(features) for member in self.members]
        return ModelSide(torch.cat([s.pre for s in sides], 1), torch.stack([s.prior for s in sides], 1))

    def query_side(self, features: QueryFeatures) -> Tensor:
        return torch.cat([member.query_side(features) for member in self.members], -1)

    def score_from_parts(self, side: ModelSide, query: Tensor, evidence: Tensor | None = None) -> Tensor:
        """The members' mean score; the evidence term is the same in each, so it is added once, unaveraged."""
        scores = [member.score_from_parts(s, q, evidence) for member, s, q in self._parts(side, query)]
        return torch.stack(scores).mean(0)

    def forward(self, models: ModelFeatures, queries: QueryFeatures, evidence: Tensor | None = None) -> Output:
        outputs = [member(models, queries, evidence) for member in self.members]
        return Output(*(torch.stack(parts).mean(0) for parts in zip(*outputs, strict=True)))
