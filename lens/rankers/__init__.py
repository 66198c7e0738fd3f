"""Rankers behind one interface, and the registry that names them.

Every ranker learns from the training part of a split (`fit(corpus)`) and scores candidate models for a query
(`score(query, candidates)`, higher = predicted better). Candidates are model ids of `corpus.models`, which lists
every known model including cold-start ones (with their metadata but no training records).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lens.corpus import Corpus
from lens.embeddings import Embedder
from lens.errors import UnknownRankerError


@dataclass(frozen=True, slots=True)
class Query:
    """A ranking request: the evaluation setting a user wants models for."""

    dataset: str
    task: str
    metric: str
    description: str = ""
    source: str = ""
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        for name in ("dataset", "task", "metric"):
            if not getattr(self, name).strip():
                raise ValueError(f"Query.{name} must be non-empty")

    @property
    def group(self) -> str:
        """The ranking-group key this query names (matches `Corpus.groups["key"]` for a known leaderboard)."""
        return "|".join((self.source, self.task, self.dataset, self.metric))

    @property
    def text(self) -> str:
        """The text embedded for this query; the same format as `Corpus.groups["text"]`."""
        if self.description:
            return f"{self.dataset} ({self.task}, {self.metric}): {self.description}"
        return f"{self.dataset} | task: {self.task} | metric: {self.metric}"

    @classmethod
    def for_group(cls, groups, group_id: int) -> Query:
        row = groups.loc[group_id]
        return cls(
            row["dataset"], row["task"], row["metric"], row["description"], row["source"], bool(row["higher_is_better"])
        )


@dataclass(frozen=True, slots=True)
class Context:
    """What rankers may use besides the training records: the text encoder and a seed."""

    embedder: Embedder
    seed: int = 2025


class Ranker:
    """Base class: subclasses set `name` through `@register` and implement `fit` and `score`."""

    name = "ranker"

    def __init__(self, context: Context):
        self.context = context

    def fit(self, corpus: Corpus) -> Ranker:
        raise NotImplementedError

    def score(self, query: Query, candidates: np.ndarray) -> np.ndarray:
        raise NotImplementedError


_REGISTRY: dict[str, type[Ranker]] = {}
_ALIASES: dict[str, str] = {}


def register(name: str, aliases: tuple[str, ...] = ()) -> Callable[[type[Ranker]], type[Ranker]]:
    """Class decorator adding a ranker to the registry under `name` and its aliases."""

    def add(cls: type[Ranker]) -> type[Ranker]:
        cls.name = name
        _REGISTRY[name] = cls
        for alias in (name, *aliases):
            _ALIASES[alias.lower()] = name
        return cls

    return add


def available() -> list[str]:
    """Registered ranker names, in registration order."""
    _load_builtin()
    return list(_REGISTRY)


def make_ranker(name: str, context: Context) -> Ranker:
    """A fresh ranker by name or alias; unknown names list the known ones."""
    _load_builtin()
    try:
        return _REGISTRY[_ALIASES[name.lower()]](context)
    except KeyError:
        raise UnknownRankerError(f"unknown ranker {name!r}; known rankers: {', '.join(available())}") from None


def _load_builtin() -> None:
    from lens.rankers import content, factorisation, learning_to_rank, modellens, statistics  # noqa: F401
