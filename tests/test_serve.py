"""The serving API over real HTTP: a real Ray Serve app on 127.0.0.1 answering from a real MLflow registry's @champion.

One app per module (starting Ray and Serve takes seconds): the API contract, its 4xx answers, the reload guard, and
the hot swap, where a new champion is promoted while clients keep asking and not one request may fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
import ray
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient
from ray import serve
from ray.serve.schema import ServeDeploySchema
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from typer.testing import CliRunner

from flows import registry
from flows.train import TrainingRun, train
from lens.settings import PROJECT_ROOT, Settings
from serve import local
from serve.app import ModelLensServer
from serve.cli import app as cli
from tests.conftest import Traffic, serving

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("in_home")]
NAME = Settings().registered_model
TOKEN = "test-reload-token"
ASR = {"description": "Accented English conversational speech", "task": "Speech Recognition", "metric": "WER"}


@pytest.fixture(scope="module")
def home(platform_home, prefect_harness) -> Iterator[Path]:
    home = platform_home()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELLENS_HOME", str(home))
        patch.setenv("MODELLENS_SERVE_PORT", str(local.free_ports(1)[0]))
        patch.setenv("MODELLENS_SERVE_RELOAD_TOKEN", TOKEN)
        patch.setenv("MODELLENS_SERVE_POLL_SECONDS", "0.5")
        yield home


@pytest.fixture(scope="module")
def champion(home: Path, client: MlflowClient) -> TrainingRun:
    run = train(config=home / "tiny.yaml")
    registry.promote(client, NAME, run.version, {"promotion.decision": "manual"})
    return run


@pytest.fixture(scope="module")
def api(champion: TrainingRun) -> Iterator[httpx.Client]:
    with serving() as http:
        yield http


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Debian's headless Chromium driven by its own chromedriver (`.ci/run` installs both)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = (
            "the browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",  # this machine's network is closed: no update or sync calls
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _recommend(api: httpx.Client, **body) -> list[dict]:
    response = api.post("/recommend", json={**ASR, **body})
    assert response.status_code == 200, response.text
    return response.json()["recommendations"]


def test_recommend_returns_k_ranked_models_with_evidence(api: httpx.Client, champion: TrainingRun):
    response = api.post("/recommend", json={**ASR, "k": 7})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == str(champion.version) and len(body["request_id"]) == 32
    picks = body["recommendations"]
    assert [p["rank"] for p in picks] == list(range(1, 8))
    assert [p["score"] for p in picks] == sorted((p["score"] for p in picks), reverse=True)
    assert set(picks[0]) == {"rank", "model", "score", "params", "license", "family", "url", "evidence"}
    assert any(p["evidence"] for p in picks)
    for evidence in (e for p in picks for e in p["evidence"]):
        assert set(evidence) == {"dataset", "metric", "value", "similarity"}
    for pick in picks:
        expected = f"https://huggingface.co/{pick['model']}" if pick["model"].count("/") == 1 else None
        assert pick["url"] == expected


def test_unknown_task_metric_and_dataset_are_cold_starts(api: httpx.Client):
    picks = _recommend(api, task="Bird Song Counting", metric="F7@whatever", dataset="brand-new-birds", k=3)
    assert len(picks) == 3
    only_description = api.post("/recommend", json={"description": "Grade-school math word problems"})
    assert only_description.status_code == 200 and len(only_description.json()["recommendations"]) == 10


def test_candidates_are_the_only_models_ranked(api: httpx.Client):
    known = [p["model"] for p in _recommend(api, k=2)]
    candidates = [*known, "someone/unseen-asr-7b"]
    picks = _recommend(api, candidates=candidates, k=10)
    assert sorted(p["model"] for p in picks) == sorted(candidates)
    unseen = next(p for p in picks if p["model"] == "someone/unseen-asr-7b")
    assert unseen["evidence"] == [] and unseen["params"] == 7_000_000_000


def test_filters_are_applied(api: httpx.Client):
    everything = _recommend(api, k=100)
    sized = [p for p in everything if p["params"] is not None]
    limit = sorted(p["params"] for p in sized)[len(sized) // 2]
    small = _recommend(api, k=20, filters={"max_params": limit})
    assert small and all(p["params"] is not None and p["params"] <= limit for p in small)
    large = _recommend(api, k=20, filters={"min_params": limit})
    assert large and all(p["params"] is not None and p["params"] >= limit for p in large)
    license = next(p["license"] for p in everything if p["license"])
    licensed = _recommend(api, k=20, filters={"licenses": [license.upper()]})
    assert licensed and all(p["license"].lower() == license.lower() for p in licensed)
    family = everything[0]["family"]
    assert all(p["family"] == family for p in _recommend(api, k=20, filters={"families": [family]}))
    top = everything[0]["model"]
    assert top not in [p["model"] for p in _recommend(api, k=20, filters={"exclude": [top]})]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**ASR, "k": 0}, "k"),
        ({**ASR, "k": 101}, "k"),
        ({**ASR, "k": "many"}, "k"),
        ({"task": "Speech Recognition"}, "description"),
        ({**ASR, "description": "x" * 4001}, "description"),
        ({**ASR, "description": "   "}, "description"),
        ({**ASR, "candidates": [f"org/model-{i}" for i in range(1001)]}, "candidates"),
        ({**ASR, "candidates": "openai/whisper-large-v3"}, "candidates"),
        ({**ASR, "higher_is_better": "sometimes"}, "higher_is_better"),
        ({**ASR, "filters": {"max_params": -1}}, "max_params"),
        ({**ASR, "filters": {"min_params": 10**400}}, "min_params"),
        ({**ASR, "filters": {"open_weights_only": True}}, "filters"),
        ({**ASR, "filters": {"min_params": 10, "max_params": 5}}, "filters"),
        ({**ASR, "colour": "blue"}, "colour"),
    ],
)
def test_bad_requests_are_422_naming_the_field(api: httpx.Client, body: dict, field: str):
    response = api.post("/recommend", json=body)
    assert response.status_code == 422, response.text
    assert any(field in error["loc"] for error in response.json()["detail"]), response.text


def test_open_weights_filter_says_why_it_is_refused(api: httpx.Client):
    response = api.post("/recommend", json={**ASR, "filters": {"open_weights_only": True}})
    assert "open_weights_only is not supported" in response.text


def test_a_body_over_the_limit_is_413(api: httpx.Client):
    response = api.post("/recommend", json={**ASR, "candidates": ["o/" + "m" * 290] * 1000})
    assert response.status_code == 413 and "limit" in response.text


def test_pool_returns_the_top_k_names(api: httpx.Client, champion: TrainingRun):
    response = api.post("/pool", json={**ASR, "k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == str(champion.version)
    assert body["models"] == [p["model"] for p in _recommend(api, k=5)]


def test_model_metadata_and_observed_scores(api: httpx.Client):
    name = next(p["model"] for p in _recommend(api, k=50) if "/" in p["model"] and p["evidence"])
    response = api.get(f"/models/{name}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == name and body["observations"]
    assert {"source", "task", "dataset", "metric", "value", "rank", "of"} == set(body["observations"][0])
    missing = api.get("/models/nobody/never-trained-this")
    assert missing.status_code == 404 and "nobody/never-trained-this" in missing.text


def test_tasks_metrics_health_and_docs(api: httpx.Client):
    assert "Automatic Speech Recognition" in api.get("/tasks").json()["tasks"]
    assert "WER" in api.get("/metrics").json()["metrics"]
    assert api.get("/healthz").json()["status"] == "ok"
    assert api.get("/docs").status_code == 200
    assert "/recommend" in api.get("/openapi.json").json()["paths"]


def _listeners() -> dict[int, set[str]]:
    """Every listening TCP socket of this machine: port -> the addresses it is bound to (/proc/net/tcp, tcp6)."""
    found: dict[int, set[str]] = defaultdict(set)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local_address, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                address, port = local_address.split(":")
                ipv4 = len(address) == 8
                found[int(port, 16)].add(socket.inet_ntoa(bytes.fromhex(address)[::-1]) if ipv4 else f"[{address}]")
    return found


def test_every_http_port_of_the_service_is_on_loopback_only(api: httpx.Client):
    stats = int(os.environ["RAY_SERVE_HAPROXY_STATS_PORT"])  # chosen by `local.start` in this process
    metrics = int(os.environ["RAY_SERVE_HAPROXY_METRICS_PORT"])
    fallback = int(os.environ["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"])
    listeners = _listeners()
    replicas = {port for port in listeners if 30000 <= port < 31000}  # Serve's direct-ingress range: the replicas'
    assert len(replicas) >= Settings().serve_replicas
    ports = {Settings().serve_port, stats, metrics, fallback, *replicas}
    assert {port: listeners[port] for port in ports} == {port: {"127.0.0.1"} for port in ports}
    assert httpx.get(f"http://127.0.0.1:{stats}/stats").status_code == 200  # HAProxy's stats page is there
    assert "haproxy_" in httpx.get(f"http://127.0.0.1:{metrics}/metrics").text  # and its Prometheus endpoint


def test_no_process_without_the_instance_token_joins_its_ray(api: httpx.Client):
    # Ray's own gRPC servers (GCS, raylet, workers) listen on every interface, unlike the HTTP ports above: the
    # instance's token is what keeps other processes out.
    join = f"import ray; ray.init(address={ray.get_runtime_context().gcs_address!r}); print('joined')"

    def attempt(**auth: str) -> subprocess.CompletedProcess:
        env = {name: value for name, value in os.environ.items() if not name.startswith("RAY_AUTH")} | auth
        return subprocess.run([sys.executable, "-c", join], env=env, capture_output=True, text=True, timeout=120)

    refused = attempt(RAY_AUTH_MODE="disabled")  # what every process could do before: about 20 s of retries
    assert refused.returncode != 0 and "joined" not in refused.stdout
    assert "Failed to connect to Ray cluster" in refused.stderr
    admitted = attempt(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=os.environ["RAY_AUTH_TOKEN"])  # the address is right
    assert admitted.returncode == 0 and "joined" in admitted.stdout


def test_version_names_the_champion_its_snapshot_and_run(api: httpx.Client, champion: TrainingRun):
    registered = mlflow.pyfunc.load_model(f"models:/{NAME}/{champion.version}").unwrap_python_model()
    assert api.get("/version").json() == {
        "model_version": str(champion.version),
        "alias": "champion",
        "snapshot": champion.snapshot,
        "run_id": champion.run_id,
        "known_models": len(registered.recommender.bundle.models),
    }


def test_reload_needs_the_token(api: httpx.Client, champion: TrainingRun):
    assert api.post("/admin/reload").status_code == 401
    assert api.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 403
    response = api.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.json() == {"model_version": str(champion.version), "changed": False}


def _ask_on_the_page(browser: WebDriver, url: str, fields: dict[str, str]) -> str:
    """Fill the page's form as a person would, submit it, and return the status line once the answer is shown."""
    browser.get(url)
    for name, value in fields.items():
        field = browser.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    previous = browser.find_element(By.ID, "status").text
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "status").text not in ("", previous))
    WebDriverWait(browser, 60).until(lambda b: not b.find_element(By.ID, "status").text.startswith("Ranking"))
    return browser.find_element(By.ID, "status").text


def test_the_page_shows_the_ranking_its_evidence_and_a_chart(
    api: httpx.Client, browser: WebDriver, champion: TrainingRun, tmp_path: Path
):
    fields = {"description": ASR["description"], "task": ASR["task"], "metric": ASR["metric"], "k": "5"}
    status = _ask_on_the_page(browser, f"{api.base_url}/", fields)
    browser.save_screenshot(str(tmp_path / "page.png"))

    assert status == f"5 models from model version {champion.version}"
    rows = [
        [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#rows tr")
    ]
    expected = _recommend(api, k=5)  # the same question through the API
    assert [row[1] for row in rows] == [p["model"] for p in expected]
    assert [float(row[2]) for row in rows] == pytest.approx([p["score"] for p in expected], abs=1e-3)
    evidence = {row[1]: row[5] for row in rows}
    observed = [p for p in expected if p["evidence"]]
    assert observed and all(evidence[p["model"]].startswith(p["evidence"][0]["dataset"]) for p in observed)
    bars = [float(rect.get_attribute("width")) for rect in browser.find_elements(By.CSS_SELECTOR, "#chart rect")]
    assert len(bars) == 5 and bars == sorted(bars, reverse=True) and bars[0] > bars[-1]


def test_the_page_says_which_field_was_refused(api: httpx.Client, browser: WebDriver):
    status = _ask_on_the_page(browser, f"{api.base_url}/", {"description": "   "})
    assert status.startswith("Request refused (422): description")
    assert browser.find_element(By.ID, "results").is_displayed() is False


@pytest.mark.parametrize("mode", list(GenerationMode))
def test_no_request_generated_from_the_openapi_schema_is_a_server_error(api: httpx.Client, mode: GenerationMode):
    """Schemathesis draws requests for every operation (valid ones, then invalid ones): none may get a 5xx, and
    every answer must match the schema. Bounded: 120 requests per mode, all to the app on 127.0.0.1."""
    schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/recommend", "/pool", "/models/{name}", "/version", "/admin/reload"}

    @given(case=st.one_of([op.as_strategy(mode) for op in operations]))
    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=[not_a_server_error, response_schema_conformance], timeout=30)

    call()


def test_a_new_champion_is_served_without_failing_a_request(
    api: httpx.Client, client: MlflowClient, champion: TrainingRun
):
    old = client.get_model_version(NAME, str(champion.version))
    new = client.create_model_version(NAME, old.source, run_id=old.run_id, tags={"snapshot": champion.snapshot})
    with Traffic(str(api.base_url), {**ASR, "k": 3}, threads=4, requests=50, pause=0.05) as traffic:
        time.sleep(1)
        registry.promote(client, NAME, int(new.version), {"promotion.decision": "manual"})
        deadline = time.monotonic() + 60
        while api.get("/version").json()["model_version"] != str(new.version) and time.monotonic() < deadline:
            time.sleep(0.25)

    assert api.get("/version").json()["model_version"] == str(new.version)
    assert traffic.outcomes["failed"] == 0, traffic.outcomes
    assert traffic.outcomes[str(champion.version)] > 0 and traffic.outcomes[str(new.version)] > 0, traffic.outcomes


def test_a_config_deploy_reconfigures_which_alias_is_served(api: httpx.Client, client: MlflowClient):
    previous = registry.aliases(client, NAME)[registry.PREVIOUS]
    user_config = {"alias": registry.PREVIOUS, "poll_seconds": 0.5}
    serve.run(ModelLensServer.options(user_config=user_config).bind(), name=local.APP_NAME, route_prefix="/")
    served = api.get("/version").json()
    assert served["alias"] == registry.PREVIOUS and served["model_version"] == str(previous)


def test_the_config_file_deploys_this_app_on_loopback():
    config = ServeDeploySchema.model_validate(yaml.safe_load((PROJECT_ROOT / "deploy" / "serve.yaml").read_text()))
    assert config.http_options.host == "127.0.0.1" and config.http_options.port == 8000  # the settings' defaults
    (application,) = config.applications
    assert application.import_path == "serve.app:app" and application.route_prefix == "/"
    (deployment,) = application.deployments
    assert deployment.name == ModelLensServer.name and deployment.num_replicas == Settings().serve_replicas


def test_modellens_serve_is_a_command():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "Ctrl-C" in result.output
