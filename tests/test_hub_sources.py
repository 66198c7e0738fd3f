"""The Hugging Face Hub sources against a fake Hub on loopback, through the real `huggingface_hub` client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest
from huggingface_hub import constants

from lens.corpus import load_corpus
from lens.errors import SourceError
from lens.settings import Settings
from lens.sources.hub import (
    BENCHMARK_TASK,
    DATASET_COLUMNS,
    LEADERBOARD_SOURCE,
    MODEL_COLUMNS,
    RECORD_COLUMNS,
    HubCorpus,
    HubLeaderboards,
    HubModels,
)
from lens.store import Store
from tests.fake_hub import FakeHub, FakeRepo, serve

PUBLIC_CORPUS = Path(__file__).parent / "fixtures" / "public_corpus"
CORPUS_SHA = Settings().hub_corpus_revision
QWEN_SHA = "a" * 40
QWEN_CARD = b"""---
license: apache-2.0
pipeline_tag: text-generation
---

# Qwen3-8B

Qwen3 is the latest generation of large language models in the Qwen series.
"""


def _result(dataset: str, task: str, value: float, filename: str) -> dict:
    """One entry of a model's `evalResults`, as the Hub returns a parsed `.eval_results/*.yaml` file."""
    return {"filename": filename, "data": {"dataset": {"id": dataset, "task_id": task}, "value": value}}


def _entry(rank: int, model: str, value: float, verified: bool) -> dict:
    """One row of `GET /api/datasets/{id}/leaderboard`."""
    owner = model.split("/")[0]
    return {
        "rank": rank,
        "modelId": model,
        "value": value,
        "filename": ".eval_results/results.yaml",
        "verified": verified,
        "source": {"url": f"https://huggingface.co/{model}", "name": "Model card", "isExternal": False},
        "author": {"_id": owner, "name": owner, "fullname": owner, "avatarUrl": "", "type": "org"},
        "pullRequest": None,
        "notes": None,
    }


def _seed() -> FakeHub:
    hub = FakeHub(page_size=2)
    corpus_files = {path.name: path.read_bytes() for path in sorted(PUBLIC_CORPUS.iterdir())}
    hub.add_dataset(
        FakeRepo(
            "luisrui/ModelLens-corpus-v2",
            CORPUS_SHA,
            {"tags": ["size_categories:1M<n<10M"]},
            {".gitattributes": b"*.csv filter=lfs\n", "README.md": b"# ModelLens corpus v2\n", **corpus_files},
        )
    )
    benchmark = ["benchmark:official"]
    hub.add_dataset(
        FakeRepo(
            "Idavidrein/gpqa",
            "b" * 40,
            {
                "tags": [*benchmark, "task_categories:question-answering"],
                "cardData": {"task_categories": ["question-answering"], "pretty_name": "GPQA"},
                "description": "GPQA: 448 graduate-level multiple-choice questions written by domain experts.",
            },
        )
    )
    hub.add_dataset(
        FakeRepo(
            "SWE-bench/SWE-bench_Verified",
            "c" * 40,
            {"tags": benchmark, "description": "500 human-validated GitHub issues with tests."},
        )
    )
    hub.add_dataset(
        FakeRepo(
            "openslr/librispeech_asr",
            "d" * 40,
            {
                "tags": benchmark,
                "cardData": {"task_categories": "automatic-speech-recognition"},
                "description": "LibriSpeech: 1000 hours of read English speech.",
            },
        )
    )
    hub.add_dataset(FakeRepo("cais/hle", "e" * 40, {"tags": benchmark}))  # no description, no leaderboard yet
    hub.add_dataset(FakeRepo("someone/private-eval", "f" * 40, {"tags": []}))
    hub.leaderboards = {
        "Idavidrein/gpqa": [
            _entry(1, "Qwen/Qwen3-8B", 0.62, verified=True),
            _entry(2, "meta-llama/Llama-3.1-8B-Instruct", 0.30, verified=False),
            _entry(3, "gone/deleted-model", 0.10, verified=True),
        ],
        "SWE-bench/SWE-bench_Verified": [_entry(1, "Qwen/Qwen3-8B", 45.2, verified=False)],
        # Ranked best first: the top score is the smallest, so lower is better (word error rate).
        "openslr/librispeech_asr": [
            _entry(1, "openai/whisper-large-v3", 2.1, verified=True),
            _entry(2, "openai/whisper-small", 3.4, verified=True),
        ],
    }
    hub.add_model(
        FakeRepo(
            "Qwen/Qwen3-8B",
            QWEN_SHA,
            {
                "author": "Qwen",
                "createdAt": "2025-04-27T03:41:47.000Z",
                "downloads": 1_234_567,
                "pipeline_tag": "text-generation",
                "tags": ["transformers", "safetensors", "qwen3", "text-generation", "license:apache-2.0"],
                "cardData": {"license": "apache-2.0", "pipeline_tag": "text-generation"},
                "config": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"},
                "safetensors": {"parameters": {"BF16": 8190735360}, "total": 8190735360},
                "evalResults": [
                    _result("Idavidrein/gpqa", "gpqa_diamond", 0.62, ".eval_results/gpqa.yaml"),
                    _result("Idavidrein/gpqa", "gpqa_main", 0.58, ".eval_results/gpqa.yaml"),
                    _result("SWE-bench/SWE-bench_Verified", "swe_bench_%_resolved", 45.2, ".eval_results/swe.yaml"),
                    _result("someone/private-eval", "default", 0.9, ".eval_results/private.yaml"),
                    {"filename": ".eval_results/broken.yaml", "error": "Invalid YAML"},
                ],
            },
            {"README.md": QWEN_CARD, "model.safetensors": b"\0"},
        )
    )
    hub.add_model(
        FakeRepo(
            "meta-llama/Llama-3.1-8B-Instruct",
            "1" * 40,
            {
                "createdAt": "2024-07-18T08:56:00.000Z",
                "gated": "manual",
                "cardData": {"license": "other", "license_name": "llama3.1"},
                "safetensors": {"parameters": {"BF16": 8030261248}, "total": 8030261248},
                "evalResults": [_result("Idavidrein/gpqa", "gpqa_diamond", 0.30, ".eval_results/gpqa.yaml")],
            },
            {"README.md": b"Llama 3.1 instruction-tuned text model."},
        )
    )
    for name, value, created in (("whisper-large-v3", 2.1, "2023-11-07"), ("whisper-small", 3.4, "2022-09-26")):
        hub.add_model(
            FakeRepo(
                f"openai/{name}",
                "2" * 40,
                {
                    "createdAt": f"{created}T00:00:00.000Z",
                    "tags": ["whisper", "license:apache-2.0"],
                    "evalResults": [
                        _result("openslr/librispeech_asr", "test_clean_wer", value, ".eval_results/ls.yaml")
                    ],
                },
            )
        )
    # Older than the Hub's creation dates, no weights info, no card, no license: everything but the id is unknown.
    hub.add_model(
        FakeRepo(
            "someone/tiny-unknown", "3" * 40, {"createdAt": "2022-03-02T23:29:04.000Z", "downloads": 0, "tags": []}
        )
    )
    return hub


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The seeded fake Hub, running, with the sources' settings pointed at it and backoff too short to wait on."""
    fake = _seed()
    with serve(fake) as url:
        # `make test` exports HF_HUB_OFFLINE=1 so the rest of the suite never reaches out; the client reads it once at
        # import into this constant, which its request hook checks. The fake Hub is loopback: nothing leaves the host.
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("MODELLENS_HUB_ENDPOINT", url)
        monkeypatch.setenv("MODELLENS_HUB_RETRIES", "2")
        monkeypatch.setenv("MODELLENS_HUB_BACKOFF", "0.01")
        monkeypatch.setenv("MODELLENS_HUB_TIMEOUT", "5")
        yield fake


def test_corpus_is_downloaded_at_the_pinned_commit_then_served_from_the_cache(hub: FakeHub, isolated_home: Path):
    snapshot = HubCorpus().fetch()

    assert snapshot.name == CORPUS_SHA
    assert snapshot.is_relative_to(isolated_home / "cache" / "huggingface")
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(p.name for p in PUBLIC_CORPUS.iterdir())
    assert (snapshot / "data.csv").read_bytes() == (PUBLIC_CORPUS / "data.csv").read_bytes()
    assert "squad" in set(load_corpus(snapshot).groups["dataset"])  # the public layout, ready for the store

    downloads = hub.count("GET", "/datasets/")
    assert HubCorpus().fetch() == snapshot
    assert hub.count("GET", "/datasets/") == downloads
    assert hub.count("HEAD", "/datasets/") == downloads  # one metadata request per file, the first time only


def test_corpus_revision_not_on_the_hub_is_a_source_error(hub: FakeHub, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MODELLENS_HUB_CORPUS_REVISION", "0" * 40)
    with pytest.raises(SourceError, match="MODELLENS_HUB_CORPUS_REVISION") as error:
        HubCorpus().fetch()
    assert error.value.url == f"{hub.url}/api/datasets/luisrui/ModelLens-corpus-v2/revision/{'0' * 40}"


def test_a_download_5xx_is_retried_by_the_client_itself(hub: FakeHub):
    hub.fail("/datasets/luisrui/ModelLens-corpus-v2/resolve", status=502, times=1, method="HEAD")
    assert (HubCorpus().fetch() / "data.csv").is_file()


def test_a_listing_page_5xx_is_retried_by_the_client_itself(hub: FakeHub):
    hub.fail("/api/models", status=503, times=1, method="GET")  # the client waits 1 s before its retry
    assert len(HubModels().fetch_new(since=datetime(2025, 1, 1, tzinfo=UTC))) == 1
    assert sum(1 for method, path in hub.requests if (method, path) == ("GET", "/api/models")) == 2


def test_a_refused_download_is_a_source_error_naming_the_file(hub: FakeHub):
    hub.fail("/datasets/luisrui/ModelLens-corpus-v2/resolve", status=403, times=1, method="HEAD")
    with pytest.raises(SourceError, match="HTTP 403") as error:
        HubCorpus().fetch()
    assert error.value.url == f"{hub.url}/datasets/luisrui/ModelLens-corpus-v2/resolve/{CORPUS_SHA}/data.csv"


def test_leaderboard_results_become_records_with_provenance_and_verified_flag(hub: FakeHub):
    records, datasets = HubLeaderboards().fetch()

    assert list(records.columns) == list(RECORD_COLUMNS)
    assert list(datasets.columns) == list(DATASET_COLUMNS)
    assert set(records["source"]) == {LEADERBOARD_SOURCE}
    by_key = records.set_index(["model", "dataset", "metric"])
    diamond = by_key.loc[("Qwen/Qwen3-8B", "Idavidrein/gpqa", "gpqa_diamond")]
    assert diamond["value"] == 0.62
    assert diamond["task"] == "question-answering"
    assert bool(diamond["verified"]) is True
    assert diamond["origin"] == f"{hub.url}/api/models/Qwen/Qwen3-8B"
    assert diamond["revision"] == QWEN_SHA
    assert datetime.fromisoformat(diamond["fetched_at"]).tzinfo == UTC
    # Only the value the leaderboard lists as verified is verified; the model's other task on it is not.
    assert bool(by_key.loc[("Qwen/Qwen3-8B", "Idavidrein/gpqa", "gpqa_main"), "verified"]) is False
    assert (
        bool(by_key.loc[("meta-llama/Llama-3.1-8B-Instruct", "Idavidrein/gpqa", "gpqa_diamond"), "verified"]) is False
    )
    swe = by_key.loc[("Qwen/Qwen3-8B", "SWE-bench/SWE-bench_Verified", "swe_bench_%_resolved")]
    assert swe["task"] == BENCHMARK_TASK
    assert swe["higher_is_better"] == 1
    assert set(records.loc[records["dataset"] == "openslr/librispeech_asr", "higher_is_better"]) == {0}
    # Not a benchmark, a deleted model, an unparsable results file: no records.
    assert "someone/private-eval" not in set(records["dataset"])
    assert "gone/deleted-model" not in set(records["model"])
    assert len(records) == 6

    assert set(datasets["dataset"]) == {"Idavidrein/gpqa", "SWE-bench/SWE-bench_Verified", "openslr/librispeech_asr"}
    assert set(datasets["description_origin"]) == {"source"}
    gpqa = datasets.set_index("dataset").loc["Idavidrein/gpqa"]
    assert gpqa["description"].startswith("GPQA: 448")
    # Four benchmarks, two per page: the listing followed the Link header once.
    assert sum(1 for method, path in hub.requests if (method, path) == ("GET", "/api/datasets")) == 2


def test_model_metadata_comes_from_the_hub_and_unknown_stays_unknown(hub: FakeHub):
    models = HubModels().fetch(["Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B-Instruct", "someone/tiny-unknown"])

    assert list(models.columns) == list(MODEL_COLUMNS)
    rows = models.set_index("model")
    qwen = rows.loc["Qwen/Qwen3-8B"]
    assert qwen["n_parameters"] == 8190735360.0
    assert qwen["architecture"] == "Qwen3ForCausalLM"
    assert qwen["license"] == "apache-2.0"
    assert qwen["pipeline_tag"] == "text-generation"
    assert qwen["release_date"] == "2025-04-27"
    assert qwen["open_weights"] == 1.0
    assert qwen["downloads"] == 1_234_567
    assert "license:apache-2.0" in qwen["tags"].split(",")
    assert qwen["model_description"].startswith("# Qwen3-8B Qwen3 is the latest generation")
    assert "license:" not in qwen["model_description"]  # the card's YAML header is metadata, not text
    assert qwen["hf_id"] == "Qwen/Qwen3-8B"
    assert qwen["revision"] == QWEN_SHA
    assert qwen["meta_source"].startswith("hf_hub[n_parameters,architecture,license,release_date")
    assert rows.loc["meta-llama/Llama-3.1-8B-Instruct", "license"] == "llama3.1"

    tiny = rows.loc["someone/tiny-unknown"]
    for column in ("n_parameters", "architecture", "license", "release_date", "open_weights", "model_description"):
        assert pd.isna(tiny[column]), column
    assert tiny["downloads"] == 0  # a known zero is not unknown
    assert tiny["meta_source"] == "hf_hub[hf_id]"
    assert models["n_parameters"].dtype == float


def test_a_missing_model_stays_unknown_without_retries(hub: FakeHub):
    models = HubModels().fetch(["gone/deleted-model", "GPT-4 (0613)", "Qwen/Qwen3-8B"])
    assert list(models["model"]) == ["Qwen/Qwen3-8B"]
    assert hub.count("GET", "/api/models/gone/deleted-model") == 1


def test_newly_listed_models_are_paged_newest_first_and_listing_stops_at_the_cutoff(hub: FakeHub):
    models = HubModels().fetch_new(since=datetime(2023, 1, 1, tzinfo=UTC))
    assert list(models["model"]) == ["Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B-Instruct", "openai/whisper-large-v3"]
    assert models.loc[models["model"] == "openai/whisper-large-v3", "license"].item() == "apache-2.0"  # from the tag
    # Six models, two per page: the older third page is never requested.
    assert sum(1 for method, path in hub.requests if (method, path) == ("GET", "/api/models")) == 2


def test_a_5xx_twice_then_success_is_retried(hub: FakeHub):
    hub.fail("/api/models/Qwen/Qwen3-8B", status=503, times=2)
    models = HubModels().fetch(["Qwen/Qwen3-8B"])
    assert models["n_parameters"].item() == 8190735360.0
    assert hub.count("GET", "/api/models/Qwen/Qwen3-8B") == 3


def test_persistent_5xx_is_a_source_error_naming_the_url_after_bounded_retries(hub: FakeHub):
    hub.fail("/api/models/Qwen/Qwen3-8B", status=500, times=100)
    with pytest.raises(SourceError, match=r"kept failing, last with HTTP 500 \(attempt 3 of 3\)") as error:
        HubModels().fetch(["Qwen/Qwen3-8B"])
    assert error.value.url == f"{hub.url}/api/models/Qwen/Qwen3-8B"
    assert hub.count("GET", "/api/models/Qwen/Qwen3-8B") == 3


def test_persistent_timeouts_are_a_source_error_after_bounded_retries(hub: FakeHub, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MODELLENS_HUB_TIMEOUT", "0.2")
    hub.slow("/api/datasets/Idavidrein/gpqa/leaderboard", seconds=1.0, times=100)
    with pytest.raises(SourceError, match="timeout") as error:
        HubLeaderboards().fetch()
    assert error.value.url == f"{hub.url}/api/datasets/Idavidrein/gpqa/leaderboard"
    assert hub.count("GET", "/api/datasets/Idavidrein/gpqa/leaderboard") == 3


def test_a_refused_request_is_a_source_error_without_retries(hub: FakeHub):
    hub.fail("/api/models/Qwen/Qwen3-8B", status=403, times=1)
    with pytest.raises(SourceError, match=r"HTTP 403.*MODELLENS_HUB_TOKEN"):
        HubModels().fetch(["Qwen/Qwen3-8B"])
    assert hub.count("GET", "/api/models/Qwen/Qwen3-8B") == 1


def test_offline_mode_is_a_source_error_before_any_request(hub: FakeHub, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SourceError, match="HF_HUB_OFFLINE"):
        HubCorpus().fetch()
    assert hub.requests == []


def test_card_text_is_cut_to_the_configured_size(hub: FakeHub, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MODELLENS_HUB_CARD_CHARS", "12")
    description = HubModels().fetch(["Qwen/Qwen3-8B"])["model_description"].item()
    assert description == "# Qwen3-8B Q"


def test_each_hub_source_ingests_into_the_store_and_a_rerun_adds_nothing(hub: FakeHub, isolated_home: Path):
    from typer.testing import CliRunner

    from lens.cli import app

    runner = CliRunner()
    for source in ("hf-corpus", "hf-leaderboards", "hf-models"):
        result = runner.invoke(app, ["ingest", "--source", source])
        assert result.exit_code == 0, result.output
    status = runner.invoke(app, ["data", "status", "--json"])
    assert status.exit_code == 0, status.output
    counts = pd.read_json(StringIO(status.stdout), typ="series")
    store = Store()
    records = store.read("records")
    assert {"hf-leaderboards"} <= set(records["source"])  # next to the public corpus's records
    leaderboard = records[records["source"] == LEADERBOARD_SOURCE]
    assert leaderboard["origin"].str.startswith(str(Settings().hub_endpoint)).all()
    models = store.read("models").set_index("model")
    assert models.loc["Qwen/Qwen3-8B", "license"] == "apache-2.0"  # a leaderboard model, described by hf-models
    assert models.loc["Qwen/Qwen3-8B", "origin"].endswith("/api/models/Qwen/Qwen3-8B")
    snapshot = store.current()
    for source in ("hf-corpus", "hf-leaderboards", "hf-models"):
        assert runner.invoke(app, ["ingest", "--source", source]).exit_code == 0
    assert store.current() == snapshot and int(counts["records"]) == len(records)
