"""The scale-out configurations in deploy/, each checked by the tool that will read it (a schema or a dry run)."""

from __future__ import annotations

import copy
from pathlib import Path

import click
import pytest
import yaml
from dotenv import dotenv_values
from mlflow.cli import server as mlflow_server
from prefect.settings import Settings as PrefectSettings
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve.schema import ServeDeploySchema
from sqlalchemy.engine import make_url

from lens.settings import PROJECT_ROOT, Settings
from serve import local

DEPLOY = PROJECT_ROOT / "deploy"


def _env(name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Put the variables of deploy/`name` into the environment, as `set -a && . deploy/name` would."""
    values = {k: v for k, v in dotenv_values(DEPLOY / name).items() if v is not None}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def test_the_ray_cluster_config_passes_the_cluster_launchers_schema():
    config = prepare_config(copy.deepcopy(yaml.safe_load((DEPLOY / "ray-cluster.yaml").read_text())))
    validate_config(config)  # raises on any unknown or missing field
    assert config["provider"]["type"] == "local" and len(config["provider"]["worker_ips"]) == config["max_workers"]
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "deploy/platform.env" in head_start


def test_the_cluster_serve_config_autoscales_the_same_app():
    config = ServeDeploySchema.model_validate(yaml.safe_load((DEPLOY / "serve-cluster.yaml").read_text()))
    local = ServeDeploySchema.model_validate(yaml.safe_load((DEPLOY / "serve.yaml").read_text()))
    (application,), (single,) = config.applications, local.applications
    assert application.import_path == single.import_path == "serve.app:app"
    (deployment,) = application.deployments
    scaling = deployment.autoscaling_config
    assert 1 < scaling["min_replicas"] < scaling["max_replicas"] and scaling["target_ongoing_requests"] > 0
    assert config.http_options.host == "127.0.0.1" and deployment.user_config["alias"] == "champion"


def test_the_platform_settings_point_every_node_at_the_shared_servers(monkeypatch: pytest.MonkeyPatch):
    values = _env("platform.env", monkeypatch)
    settings = Settings()
    assert settings.mlflow_uri == values["MODELLENS_MLFLOW_TRACKING_URI"].rstrip("/")
    assert settings.mlflow_uri.startswith("http://") and settings.home == Path("/srv/modellens")
    assert set(settings.sources) == {"local", "hf-leaderboards", "hf-models"}
    assert PrefectSettings().api.url == values["PREFECT_API_URL"]
    assert values["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == local.SERVE_ENVIRONMENT["RAY_SERVE_THROUGHPUT_OPTIMIZED"]


def test_the_mlflow_server_reads_postgresql_and_an_object_store(monkeypatch: pytest.MonkeyPatch):
    values = _env("mlflow-server.env", monkeypatch)
    options = {o.envvar: o for o in mlflow_server.params if isinstance(o, click.Option) and o.envvar}
    assert {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION"} <= options.keys()  # `mlflow server` reads them
    assert make_url(values["MLFLOW_BACKEND_STORE_URI"]).get_backend_name() == "postgresql"
    assert values["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    context = mlflow_server.make_context("server", [], resilient_parsing=True)
    assert context.params["backend_store_uri"] == values["MLFLOW_BACKEND_STORE_URI"]


def test_the_prefect_server_runs_on_postgresql_on_loopback(monkeypatch: pytest.MonkeyPatch):
    _env("prefect-server.env", monkeypatch)
    server = PrefectSettings().server
    assert make_url(server.database.connection_url.get_secret_value()).get_backend_name() == "postgresql"
    assert server.api.host == "127.0.0.1" and server.api.port == 4200
    declared = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())["deployments"]
    assert {d["work_pool"]["name"] for d in declared} == {"modellens"}  # the pool the README creates
