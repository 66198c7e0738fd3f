"""The `promote` flow: score `@challenger` and `@champion` on today's held-out families, promote if the gate agrees.

Both registered models are loaded from the registry as pyfuncs (what serving loads) and re-scored on the current
snapshot's stable held-out groups, so a champion trained on yesterday's data is judged on today's data without
having trained on any of it. The decision and its numbers become tags on both versions; a promotion moves
`@champion` and keeps the replaced version as `@previous` (`flows.registry`).
"""

from __future__ import annotations

import math

import mlflow
from mlflow.tracking import MlflowClient
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows import registry, tracking
from flows.errors import RegistryError
from flows.evaluation import BundleRanker
from flows.gate import Policy, PromotionDecision, decide
from flows.snapshot import evaluate_ranker, hold_out, load_snapshot
from lens.evaluate import Evaluation
from lens.settings import Settings
from lens.store import Store


@task(cache_policy=NO_CACHE)
def read_aliases(client: MlflowClient, name: str) -> dict[str, int]:
    return registry.aliases(client, name)


@task(cache_policy=NO_CACHE, task_run_name="load version {version}")
def load_version(name: str, version: int) -> BundleRanker:
    """A registered version as a ranker, loaded the way serving loads it (`mlflow.pyfunc.load_model`)."""
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    return BundleRanker(model.unwrap_python_model().recommender, f"version {version}")


@task(cache_policy=NO_CACHE)
def judge(
    challenger: int,
    challenger_eval: Evaluation,
    champion: int | None,
    champion_eval: Evaluation | None,
    policy: Policy,
    snapshot: str,
) -> PromotionDecision:
    return decide(challenger, challenger_eval, champion, champion_eval, policy, snapshot)


@task(cache_policy=NO_CACHE)
def record(client: MlflowClient, name: str, decision: PromotionDecision) -> None:
    """Tag both versions with the decision; on a promotion, move `@champion` (and `@previous`)."""
    tags = {**decision.tags(), "promotion.by": "gate", "promotion.at": registry.now()}
    if decision.promote:
        registry.promote(client, name, decision.challenger, tags)
    else:
        registry.tag_version(client, name, decision.challenger, tags)
    if decision.champion is not None:
        outcome = "replaced by" if decision.promote else "defended against"
        summary = f"{outcome} version {decision.challenger} on {decision.snapshot}: {decision.reason}"
        registry.tag_version(client, name, decision.champion, {"promotion.last_challenge": summary})


def _run_name() -> str:
    snapshot = flow_run.parameters.get("snapshot") or Store(Settings().store_dir).current()
    return f"promote on {snapshot}"


@flow(name="promote", flow_run_name=_run_name)
def promote(snapshot: str | None = None) -> PromotionDecision:
    """Compare `@challenger` with `@champion` on a snapshot (default: the current one) and promote if it is better.

    With no champion yet, a valid challenger is promoted. A challenger that already is the champion is left alone.

    Raises:
        RegistryError: there is no `@challenger` (run `modellens retrain`).
    """
    settings = Settings()
    client = tracking.connect(settings)
    name = settings.registered_model
    named = read_aliases(client, name)
    if registry.CHALLENGER not in named:
        raise RegistryError(f"registered model {name!r} has no @challenger: `modellens retrain` registers one")
    challenger, champion = named[registry.CHALLENGER], named.get(registry.CHAMPION)
    if challenger == champion:
        snapshot = Store(settings.store_dir).snapshot_dir(snapshot).name
        reason = "the challenger already is the champion"
        return PromotionDecision(
            challenger, champion, snapshot, False, reason, settings.promotion_metric, math.nan, None
        )
    data = load_snapshot(snapshot)
    split, parts = hold_out(data.corpus, settings.holdout_fraction)
    challenger_eval = evaluate_ranker(load_version(name, challenger), parts, split.name)
    champion_eval = None if champion is None else evaluate_ranker(load_version(name, champion), parts, split.name)
    decision = judge(challenger, challenger_eval, champion, champion_eval, Policy.from_settings(settings), data.id)
    record(client, name, decision)
    return decision
