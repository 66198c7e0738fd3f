"""Shared fixtures: a small real slice of ../shared/corpus, an isolated MODELLENS_HOME, one embedder per session."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import torch
import yaml

import serve  # noqa: F401  (sets Ray's auth switches, which Ray reads when imported: before any test imports Ray)
from lens.corpus import Corpus, load_corpus
from lens.embeddings import Embedder
from lens.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
# Small leaderboards with descriptions, several benchmark families, lower-is-better WER, and cross-source models.
SLICE_FILES = (
    "timm.csv.gz",
    "openclip.csv.gz",
    "open_asr_leaderboard.csv.gz",
    "livebench-2025-11-25.csv.gz",
    "livebench-2025-12-23.csv.gz",
    "alpacaeval.csv.gz",
    "benchbench.csv.gz",
    "pwc_sota_extractor-squad.csv.gz",
)


# Three small leaderboards of the slice: 5.6K records, 1.1K models, 105 benchmark families; seconds to train on.
SMALL_FILES = ("open_asr_leaderboard.csv.gz", "livebench-2025-11-25.csv.gz", "benchbench.csv.gz")
TINY_CONFIG = {
    "model": {"id_dim": 8, "token_dim": 8, "name_buckets": 512, "size_dim": 4, "family_dim": 4, "group_id_dim": 8,
              "task_dim": 4, "metric_dim": 4, "hidden": 16},
    "training": {"max_epochs": 2, "patience": 2, "progress": False},
}  # fmt: skip
_state: list[Path] = []


@contextlib.contextmanager
def serving() -> Iterator[httpx.Client]:
    """The real Serve app on this machine (`serve.local`, as `modellens serve` starts it) and a client for it."""
    from serve import local

    try:
        url = local.start(Settings())
        with httpx.Client(base_url=url, timeout=60) as http:
            yield http
    finally:
        local.stop()


class Traffic:
    """Clients asking `POST /recommend` over and over while a test changes things: the served version (or
    "failed") of every answer. Bounded: `threads x requests` at most, to loopback only, until the block ends."""

    def __init__(self, url: str, body: dict, threads: int, requests: int, pause: float):
        self.url, self.body, self.requests, self.pause = url, body, requests, pause
        self.outcomes: Counter[str] = Counter()
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._threads = [threading.Thread(target=self._ask) for _ in range(threads)]

    def _ask(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            for _ in range(self.requests):
                if self._stop.is_set():
                    return
                try:
                    response = http.post("/recommend", json=self.body)
                    outcome = response.json()["model_version"] if response.status_code == 200 else "failed"
                except httpx.HTTPError:
                    outcome = "failed"
                with self._lock:
                    self.outcomes[outcome] += 1
                time.sleep(self.pause)

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        time.sleep(1)  # a few more answers on whatever is served now
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module imports Prefect or MLflow: their state under a temp dir, telemetry off (STACK_NOTES).

    Prefect reads PREFECT_HOME when it is first imported, which can be while tests are collected.
    """
    from flows.environment import TELEMETRY_OFF

    _state.append(Path(tempfile.mkdtemp(prefix="modellens-tests-")))
    os.environ.setdefault("PREFECT_HOME", str(_state[0] / "prefect"))
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)


def pytest_unconfigure(config: pytest.Config) -> None:
    for path in _state:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API (a fresh sqlite database) for every flow of the session: ~7 s to start, so shared."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Small matrices on shared cores: one torch thread avoids OpenMP oversubscription stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes state under its own MODELLENS_HOME, never into the project."""
    home = tmp_path / "home"
    monkeypatch.setenv("MODELLENS_HOME", str(home))
    return home


@pytest.fixture
def in_home(home: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point MODELLENS_HOME at the module's `home` fixture (a platform home shared by the module's tests)."""
    monkeypatch.setenv("MODELLENS_HOME", str(home))


@pytest.fixture(scope="module")
def client(home: Path):
    """The MLflow client of the module's `home` (its sqlite tracking store and registry)."""
    from flows import tracking

    return tracking.connect(Settings())


@pytest.fixture(scope="session")
def real_corpus_dir() -> Path:
    path = Settings().corpus
    assert (path / "records").is_dir(), f"the shared corpus is missing at {path}"
    return path


@pytest.fixture(scope="session")
def slice_dir(real_corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus directory in the shared layout linking a few real leaderboards (read-only, nothing copied)."""
    root = tmp_path_factory.mktemp("slice")
    (root / "records").mkdir()
    for name in SLICE_FILES:
        (root / "records" / name).symlink_to(real_corpus_dir / "records" / name)
    (root / "datasets.csv").symlink_to(real_corpus_dir / "datasets.csv")
    # Metadata of the slice's own models only: every listed model is a candidate whose text gets embedded.
    names = pd.concat(pd.read_csv(p, usecols=["model"]) for p in (root / "records").iterdir())["model"]
    models = pd.read_csv(real_corpus_dir / "models.csv.gz")
    models[models["model"].isin(set(names))].to_csv(root / "models.csv.gz", index=False)
    return root


@pytest.fixture(scope="session")
def slice_corpus(slice_dir: Path) -> Corpus:
    return load_corpus(slice_dir)


@pytest.fixture(scope="session")
def full_corpus(real_corpus_dir: Path) -> Corpus:
    return load_corpus(real_corpus_dir)


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MODELLENS_HOME whose embedding cache the whole session shares (tests that run commands point at it)."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def embedder(shared_home: Path) -> Embedder:
    """The real offline all-MiniLM-L6-v2, caching under the shared home."""
    return Embedder(Settings().encoder, shared_home / "cache")


@pytest.fixture(scope="session")
def small_store(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A record store with one snapshot ingested (the real ingest path) from `SMALL_FILES` and their metadata."""
    from lens.ingest import ingest
    from lens.sources.local import LocalSource
    from lens.store import Store

    drop = tmp_path_factory.mktemp("small")
    (drop / "records").mkdir()
    for name in SMALL_FILES:
        (drop / "records" / name).symlink_to(slice_dir / "records" / name)
    (drop / "datasets.csv").symlink_to(slice_dir / "datasets.csv")
    names = pd.concat(pd.read_csv(p, usecols=["model"]) for p in (drop / "records").iterdir())["model"]
    models = pd.read_csv(slice_dir / "models.csv.gz")
    models[models["model"].isin(set(names))].to_csv(drop / "models.csv.gz", index=False)
    store = Store(tmp_path_factory.mktemp("store"))
    assert ingest([LocalSource((drop,))], store).outcome == "published"
    return store.root


@pytest.fixture(scope="session")
def platform_home(small_store: Path, shared_home: Path, tmp_path_factory: pytest.TempPathFactory):
    """Make a MODELLENS_HOME for flow tests: its own MLflow store, a copy of `small_store` to ingest more into, the
    session's embedding cache, and the tiny ModelLens config as `tiny.yaml`."""

    def make() -> Path:
        home = tmp_path_factory.mktemp("platform")
        shutil.copytree(small_store, home / "store")
        Settings.ensure(shared_home / "cache")
        (home / "cache").symlink_to(shared_home / "cache", target_is_directory=True)
        (home / "tiny.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
        return home

    return make
