"""Promotion on a real MLflow registry: the gate, the aliases, manual moves, the CLI, rollback.

One registry per module, built up like production: an untrained model (a real network whose weights never moved) is
registered on snapshot A and promoted as the first valid challenger; a new leaderboard release arrives (snapshot B);
a trained model is registered and beats the champion re-scored on B; another untrained one is refused.
"""

import math
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from flows.cli import app, mlflow_ui
from flows.gate import Policy, PromotionDecision, decide
from flows.promote import promote
from flows.registry import CHALLENGER, CHAMPION, PREVIOUS, aliases
from flows.train import TrainingRun, train
from lens.evaluate import Evaluation
from lens.ingest import ingest
from lens.settings import Settings
from lens.sources.local import LocalSource
from lens.splits import STABLE_SPLIT
from lens.store import Store
from tests.conftest import TINY_CONFIG

UNTRAINED = {
    "model": {**TINY_CONFIG["model"], "evidence_view": False},
    "training": {"max_epochs": 1, "learning_rate": 0.0, "progress": False},
}
"""A real network left at its initial weights, without the neighbour evidence that would rank well untrained."""
NAME = Settings().registered_model
runner = CliRunner()

pytestmark = pytest.mark.usefixtures("in_home")


@pytest.fixture(scope="module")
def home(platform_home, prefect_harness) -> Path:
    home = platform_home()
    (home / "untrained.yaml").write_text(yaml.safe_dump(UNTRAINED))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELLENS_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def first(home: Path) -> tuple[TrainingRun, PromotionDecision]:
    return train(config=home / "untrained.yaml"), promote()


@pytest.fixture(scope="module")
def better(home: Path, slice_dir: Path, first) -> tuple[TrainingRun, PromotionDecision]:
    release = slice_dir / "records" / "livebench-2025-12-23.csv.gz"
    assert ingest([LocalSource((release,))], Store()).outcome == "published"  # snapshot B
    return train(config=home / "tiny.yaml"), promote()


@pytest.fixture(scope="module")
def worse(home: Path, better) -> tuple[TrainingRun, PromotionDecision]:
    return train(config=home / "untrained.yaml"), promote()


def _tags(client: MlflowClient, version: int) -> dict[str, str]:
    return client.get_model_version(NAME, str(version)).tags


def test_the_first_valid_challenger_is_promoted(client: MlflowClient, first):
    run, decision = first
    assert decision.promote and decision.champion is None and "first valid challenger" in decision.reason
    assert aliases(client, NAME) == {CHALLENGER: run.version, CHAMPION: run.version}
    tags = _tags(client, run.version)
    assert tags["promotion.decision"] == "promoted" and tags["promotion.champion_version"] == "none"


def test_a_better_challenger_is_promoted_over_the_champion_rescored_on_todays_data(client: MlflowClient, first, better):
    (old, _), (new, decision) = first, better
    assert new.snapshot != old.snapshot == _tags(client, old.version)["snapshot"]
    assert decision.snapshot == new.snapshot and decision.champion == old.version
    assert decision.promote and decision.challenger_value > decision.champion_value
    assert aliases(client, NAME) == {CHALLENGER: new.version, CHAMPION: new.version, PREVIOUS: old.version}
    tags = _tags(client, new.version)
    assert tags["promotion.decision"] == "promoted" and tags["promotion.snapshot"] == new.snapshot
    assert float(tags["promotion.champion.ndcg_at_10"]) == pytest.approx(decision.champion_value, abs=1e-6)
    assert tags["promotion.guardrail.regret_at_1"].startswith("pass")
    assert _tags(client, old.version)["promotion.last_challenge"].startswith(f"replaced by version {new.version}")


def test_a_worse_challenger_is_refused_and_the_champion_stays(client: MlflowClient, better, worse):
    (champion, _), (run, decision) = better, worse
    assert not decision.promote and decision.champion == champion.version
    assert decision.challenger_value < decision.champion_value and "ndcg@10" in decision.reason
    assert aliases(client, NAME)[CHAMPION] == champion.version
    assert aliases(client, NAME)[CHALLENGER] == run.version
    tags = _tags(client, run.version)
    assert tags["promotion.decision"] == "refused" and tags["promotion.champion_version"] == str(champion.version)
    assert tags["promotion.guardrail.regret_at_1"].startswith("FAIL")
    assert "defended against" in _tags(client, champion.version)["promotion.last_challenge"]


def test_serving_and_the_gate_follow_a_champion_moved_by_hand(client: MlflowClient, first, worse):
    (chosen, _), (challenger, _) = first, worse
    client.set_registered_model_alias(NAME, CHAMPION, str(chosen.version))  # what moving the alias in the UI does
    served = mlflow.pyfunc.load_model(f"models:/{NAME}@{CHAMPION}")
    assert served.metadata.run_id == chosen.run_id
    decision = promote()
    assert decision.champion == chosen.version and decision.challenger == challenger.version
    assert _tags(client, challenger.version)["promotion.champion_version"] == str(chosen.version)


def test_promote_version_from_the_command_line_keeps_the_replaced_champion_as_previous(client: MlflowClient, better):
    before = aliases(client, NAME)[CHAMPION]
    target = better[0].version
    assert before != target
    result = runner.invoke(app, ["promote", "--version", str(target)])
    assert result.exit_code == 0, result.output
    assert aliases(client, NAME)[CHAMPION] == target and aliases(client, NAME)[PREVIOUS] == before
    assert _tags(client, target)["promotion.decision"] == "manual"


def test_rollback_restores_the_previous_champion(client: MlflowClient, better):
    named = aliases(client, NAME)
    result = runner.invoke(app, ["rollback"])
    assert result.exit_code == 0, result.output
    assert aliases(client, NAME)[CHAMPION] == named[PREVIOUS] and aliases(client, NAME)[PREVIOUS] == named[CHAMPION]
    assert _tags(client, named[PREVIOUS])["promotion.decision"] == "rollback"


def test_promoting_a_version_that_does_not_exist_says_which_exist(client: MlflowClient, worse):
    result = runner.invoke(app, ["promote", "--version", "99"])
    assert result.exit_code != 0
    assert "no version 99" in str(result.exception) and "[1, 2, 3]" in str(result.exception)


def test_the_ui_command_starts_a_lean_local_mlflow_server(home: Path):
    command, env = mlflow_ui(Settings())
    assert command[1:4] == ["-m", "mlflow", "server"]
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--backend-store-uri") + 1] == Settings().mlflow_uri
    assert command[command.index("--workers") + 1] == "1"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false" and env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    for command in ("retrain", "promote", "rollback", "ui"):
        assert runner.invoke(app, [command, "--help"]).exit_code == 0, command


POLICY = Policy("ndcg@10", 0.0, {"regret@1": 0.02}, {"ndcg@10": 0.05}, 5)


def _evaluation(ndcg: float, regret: float, domains: dict[str, tuple[float, int]] | None = None) -> Evaluation:
    breakdown = {task: {"ndcg@10": value, "groups": float(n)} for task, (value, n) in (domains or {}).items()}
    metrics = {"ndcg@10": ndcg, "regret@1": regret, "groups": 20.0}
    return Evaluation("modellens", STABLE_SPLIT, "test", metrics, 0.0, 0.0, breakdown)


def test_the_gate_refuses_a_challenger_better_on_average_but_broken_in_one_domain():
    champion = _evaluation(0.80, 0.10, {"Speech": (0.90, 6), "Math": (0.70, 14)})
    challenger = _evaluation(0.85, 0.10, {"Speech": (0.80, 6), "Math": (0.87, 14)})
    decision = decide(2, challenger, 1, champion, POLICY, "s")
    assert not decision.promote and "ndcg@10 [Speech] worse by 0.1000" in decision.reason
    assert decision.tags()["promotion.guardrail.ndcg_at_10.Speech"].startswith("FAIL")
    assert decision.tags()["promotion.guardrail.ndcg_at_10.Math"].startswith("pass")


def test_the_gate_ignores_domains_with_few_groups_and_metrics_it_cannot_measure():
    champion = _evaluation(0.80, 0.10, {"Speech": (0.90, 2), "Math": (math.nan, 18)})
    challenger = _evaluation(0.81, 0.11, {"Speech": (0.10, 2), "Math": (math.nan, 18)})
    decision = decide(2, challenger, 1, champion, POLICY, "s")
    assert decision.promote and [check.name for check in decision.checks] == ["regret@1"]


def test_the_gate_needs_a_strict_gain_and_reads_regret_as_lower_is_better():
    champion = _evaluation(0.80, 0.10)
    assert not decide(2, _evaluation(0.80, 0.05), 1, champion, POLICY, "s").promote  # a tie is no gain
    assert not decide(2, _evaluation(0.81, 0.13), 1, champion, POLICY, "s").promote  # regret rose by 0.03 > 0.02
    assert decide(2, _evaluation(0.81, 0.12), 1, champion, POLICY, "s").promote  # by 0.02: within the bound
    assert not decide(2, _evaluation(math.nan, 0.1), None, None, POLICY, "s").promote  # not a valid challenger
