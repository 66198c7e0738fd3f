"""Shared fixtures: a small real slice of ../shared/corpus, an isolated MODELLENS_HOME, one embedder per session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

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
