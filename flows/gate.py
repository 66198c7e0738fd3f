"""The promotion gate: may the challenger replace the champion? A pure decision over two evaluations.

Both models are scored on the same held-out groups of today's snapshot. The challenger must beat the champion on
the primary metric by more than a margin, and no guardrail may regress beyond its bound: overall metrics (regret@1)
and per-domain metrics (NDCG@10 per task, for tasks with enough groups to mean something), so a model that is better
on average but breaks one domain does not reach its users. With no champion, a valid challenger (one whose primary
metric could be measured) is promoted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flows.tracking import key
from lens.evaluate import Evaluation
from lens.settings import Settings

LOWER_IS_BETTER = frozenset({"regret@1"})
"""Metrics of `lens.metrics.summarize` where a smaller value is better; every other one is higher-is-better."""
_TOLERANCE = 1e-12
"""Float noise allowed on a bound: a regression exactly at the bound passes."""


@dataclass(frozen=True)
class Policy:
    """What a challenger must achieve; from `Settings` (`promotion_*`, `domain_*`)."""

    metric: str
    margin: float
    guardrails: dict[str, float]
    domain_guardrails: dict[str, float]
    domain_min_groups: int

    def __post_init__(self) -> None:
        bounds = {**self.guardrails, **self.domain_guardrails}
        negative = {metric: bound for metric, bound in bounds.items() if not bound >= 0}
        if negative:
            raise ValueError(f"guardrail bounds are how much worse a challenger may be, so >= 0; got {negative}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            settings.promotion_metric,
            settings.promotion_margin,
            dict(settings.promotion_guardrails),
            dict(settings.domain_guardrails),
            settings.domain_min_groups,
        )


def regression(metric: str, challenger: float, champion: float) -> float:
    """How much worse the challenger is on `metric` (negative: better), whatever the metric's direction."""
    return challenger - champion if metric in LOWER_IS_BETTER else champion - challenger


@dataclass(frozen=True)
class Check:
    """One guardrail: the challenger may be at most `bound` worse than the champion on `metric` (in `domain`)."""

    metric: str
    domain: str | None
    challenger: float
    champion: float
    bound: float

    @property
    def name(self) -> str:
        return self.metric if self.domain is None else f"{self.metric} [{self.domain}]"

    @property
    def regression(self) -> float:
        return regression(self.metric, self.challenger, self.champion)

    @property
    def passed(self) -> bool:
        return self.regression <= self.bound + _TOLERANCE


@dataclass(frozen=True)
class PromotionDecision:
    """What the gate decided about one challenger, with the numbers it decided on."""

    challenger: int
    champion: int | None
    snapshot: str
    promote: bool
    reason: str
    metric: str
    challenger_value: float
    champion_value: float | None
    checks: tuple[Check, ...] = ()
    quality: tuple[tuple[str, float, float | None], ...] = ()
    """`(metric, challenger, champion)` for each of `REPORTED` (champion None when there is none)."""

    def tags(self) -> dict[str, str]:
        """The decision as model-version tags (MLflow keys allow no `@`: `ndcg@10` is written `ndcg_at_10`)."""
        metric = key(self.metric)
        tags = {
            "promotion.decision": "promoted" if self.promote else "refused",
            "promotion.reason": self.reason,
            "promotion.snapshot": self.snapshot,
            "promotion.metric": self.metric,
            "promotion.champion_version": "none" if self.champion is None else str(self.champion),
            f"promotion.challenger.{metric}": _number(self.challenger_value),
        }
        if self.champion_value is not None:
            tags[f"promotion.champion.{metric}"] = _number(self.champion_value)
        for check in self.checks:
            name = key(check.metric) if check.domain is None else f"{key(check.metric)}.{key(check.domain)}"
            tags[f"promotion.guardrail.{name}"] = (
                f"{'pass' if check.passed else 'FAIL'}: {check.challenger:.4f} vs {check.champion:.4f}, "
                f"worse by {check.regression:+.4f} (bound {check.bound})"
            )
        return tags


REPORTED = ("ndcg@10", "wtau_top", "hit@1", "regret@1")
"""The metrics a decision reports for both models, whatever it was decided on."""


def _number(value: float) -> str:
    return f"{value:.6f}"


def decide(
    challenger: int,
    challenger_eval: Evaluation,
    champion: int | None,
    champion_eval: Evaluation | None,
    policy: Policy,
    snapshot: str,
) -> PromotionDecision:
    """Decide on `challenger` against `champion` (None: there is none), both evaluated on `snapshot`'s held-out groups.

    Raises:
        ValueError: only one of `champion` and `champion_eval` is given, or the two were scored on different groups.
    """
    if (champion is None) != (champion_eval is None):
        raise ValueError("champion and champion_eval must be given together")
    value = challenger_eval.metrics.get(policy.metric, math.nan)

    theirs = {} if champion_eval is None else champion_eval.metrics
    quality = tuple(
        (m, challenger_eval.metrics.get(m, math.nan), None if champion_eval is None else theirs.get(m, math.nan))
        for m in REPORTED
    )

    def decision(promote: bool, reason: str, champion_value=None, checks=()) -> PromotionDecision:
        return PromotionDecision(
            challenger,
            champion,
            snapshot,
            promote,
            reason,
            policy.metric,
            value,
            champion_value,
            tuple(checks),
            quality,
        )

    if not math.isfinite(value):
        return decision(False, f"invalid challenger: {policy.metric} could not be measured on the held-out groups")
    if champion_eval is None:
        return decision(True, "first valid challenger: there is no champion yet")
    if champion_eval.metrics.get("groups") != challenger_eval.metrics.get("groups"):
        raise ValueError("challenger and champion were not scored on the same held-out groups")
    best = champion_eval.metrics[policy.metric]
    checks = guardrail_checks(challenger_eval, champion_eval, policy)
    gain = -regression(policy.metric, value, best)
    failed = [c for c in checks if not c.passed]
    if gain <= policy.margin:
        reason = f"{policy.metric} {value:.4f} vs champion {best:.4f}: gain {gain:+.4f} is not above {policy.margin}"
        return decision(False, reason, best, checks)
    if failed:
        reason = "guardrail(s) regressed: " + "; ".join(
            f"{c.name} worse by {c.regression:.4f} > {c.bound}" for c in failed
        )
        return decision(False, reason, best, checks)
    reason = f"{policy.metric} {value:.4f} vs champion {best:.4f}: gain {gain:+.4f} > {policy.margin}; guardrails hold"
    return decision(True, reason, best, checks)


def guardrail_checks(challenger: Evaluation, champion: Evaluation, policy: Policy) -> list[Check]:
    """Every guardrail that can be measured: overall, then per task with at least `domain_min_groups` groups.

    A metric that is NaN for either model (e.g. NDCG@10 where no group has 10 models) is not a check.
    """
    checks = [
        Check(metric, None, challenger.metrics.get(metric, math.nan), champion.metrics.get(metric, math.nan), bound)
        for metric, bound in policy.guardrails.items()
    ]
    for domain, mine in sorted(challenger.breakdown.items()):
        theirs = champion.breakdown.get(domain, {})
        if mine.get("groups", 0) < policy.domain_min_groups:
            continue
        for metric, bound in policy.domain_guardrails.items():
            checks.append(Check(metric, domain, mine.get(metric, math.nan), theirs.get(metric, math.nan), bound))
    return [c for c in checks if math.isfinite(c.challenger) and math.isfinite(c.champion)]
