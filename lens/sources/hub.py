"""Hugging Face Hub sources: the public ModelLens corpus, the Hub's benchmark leaderboards, and model metadata.

Every request goes through the real `huggingface_hub` client (an `HfApi` built with an explicit endpoint and token),
so tests point it at a fake Hub on loopback and production at huggingface.co without a code change. Each source
returns what a local drop would give the store:

- `HubCorpus.fetch()` downloads the public corpus files at the pinned commit into the Hub cache and returns that
  snapshot directory (the public `data.csv` layout that `lens.corpus` already reads).
- `HubLeaderboards.fetch()` returns `(records, datasets)` frames in `RECORD_COLUMNS` and `DATASET_COLUMNS`.
- `HubModels.fetch(names)` / `HubModels.fetch_new(since)` return a frame in `MODEL_COLUMNS`.

Failures that may pass (5xx, 429, timeouts, dropped connections) are retried with exponential backoff, then raise a
`SourceError` naming the URL. A 404 is an answer, not a failure: a missing model or card stays unknown.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch
from itertools import takewhile
from pathlib import Path, PurePosixPath
from typing import TypeVar

import httpx2
import pandas as pd
from huggingface_hub import DatasetInfo, DatasetLeaderboardEntry, HfApi, ModelInfo, constants, hf_hub_url
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.repocard import REGEX_YAML_BLOCK

from lens import corpus
from lens.errors import SourceError
from lens.settings import Settings
from lens.sources import PROVENANCE, TABLES, Drop, drops_from_frames, register_source
from lens.sources.local import LocalSource
from lens.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

LEADERBOARD_SOURCE = "hf-leaderboards"
"""The `source` of every record and dataset row from the Hub's evaluation results."""
RECORD_COLUMNS = (*corpus.RECORD_COLUMNS, *PROVENANCE, "verified")
"""The corpus record columns, each row's provenance, and whether the Hub's leaderboard verified the value."""
DATASET_COLUMNS = corpus.DATASET_COLUMNS
MODEL_COLUMNS = (
    *(column for column in corpus.MODEL_COLUMNS if column != "family"),  # the family is derived, not fetched
    "pipeline_tag",
    "tags",
    "downloads",
    *PROVENANCE,
)
BENCHMARK_TASK = "benchmark"
"""Task of a benchmark whose card declares no `task_categories`: records need one; a finer guess would be made up."""
MODEL_FIELDS = ["cardData", "config", "createdAt", "downloads", "pipeline_tag", "safetensors", "sha", "tags"]
"""What `model_info`/`list_models` are asked to expand: only the fields a models row is built from."""

# The Hub stores no creation date for repos older than this and reports 2022-03-02 for all of them: that is unknown.
_HUB_DATES_START = datetime(2022, 3, 3, tzinfo=UTC)
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# The client's not-found errors (a missing repo answers 401 to anonymous callers, so status alone does not tell).
_NOT_FOUND = (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError)


class _Missing(Exception):
    """The Hub answered that the repo, revision or file does not exist (or is not visible): for the caller to judge."""


class _Hub:
    """The configured client plus the retry policy that every Hub source shares."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        self.endpoint = self.settings.hub_endpoint.rstrip("/")
        token = self.settings.hub_token.get_secret_value() if self.settings.hub_token else False
        # `HF_ENDPOINT` and the machine's saved login are read by the client at import: pass both explicitly.
        self.api = HfApi(endpoint=self.endpoint, token=token)

    def call(self, url: str, request: Callable[[], T], *, retry: bool = True) -> T:
        """Run `request` (one Hub call about `url`), retrying transient failures with exponential backoff.

        `retry=False` is for calls the client already retries itself: listings (`paginate`) and downloads
        (`hf_hub_download`) back off up to 5 times, 1 to 8 s apart; a second loop around them would multiply that.

        Raises:
            SourceError: offline mode is on, the Hub refused the request, or it kept failing.
            _Missing: the repo, revision or file is not there (never retried).
        """
        if constants.is_offline_mode():
            raise SourceError(
                "HF_HUB_OFFLINE is set, so the client refuses every request: unset it to read the Hub", url
            )
        attempts = self.settings.hub_retries + 1 if retry else 1
        attempt = 1
        while True:
            try:
                return request()
            except Exception as error:
                cause = _transient_cause(error)
                if cause is None:
                    refusal = _http_error(error)
                    if isinstance(error, _NOT_FOUND) or (refusal is not None and refusal.response.status_code == 404):
                        raise _Missing(url) from error
                    if refusal is not None:
                        raise SourceError(
                            f"the Hub refused the request (HTTP {refusal.response.status_code}): check the repo id "
                            "and MODELLENS_HUB_TOKEN",
                            url,
                        ) from error
                    raise
                if attempt == attempts:
                    raise SourceError(
                        f"the Hub kept failing, last with {_describe(cause)} (attempt {attempt} of {attempts}): try "
                        "again later; MODELLENS_HUB_RETRIES and MODELLENS_HUB_TIMEOUT set how hard to try",
                        url,
                    ) from error
                delay = self.settings.hub_backoff * 2 ** (attempt - 1)
                log.warning("%s: %s; retry %d of %d in %.2g s", url, _describe(cause), attempt, attempts - 1, delay)
                time.sleep(delay)
                attempt += 1

    def download(self, repo_id: str, filename: str, *, repo_type: str | None, revision: str) -> Path:
        """One repo file through `hf_hub_download` into the Hub cache: one cached at a commit sha costs no request."""
        url = hf_hub_url(repo_id, filename, repo_type=repo_type, revision=revision, endpoint=self.endpoint)
        cache_dir = Settings.ensure(self.settings.hub_cache_dir)
        return Path(
            self.call(
                url,
                lambda: self.api.hf_hub_download(
                    repo_id,
                    filename,
                    repo_type=repo_type,
                    revision=revision,
                    cache_dir=cache_dir,
                    etag_timeout=self.settings.hub_timeout,
                ),
                retry=False,
            )
        )


class HubCorpus:
    """The public ModelLens corpus (`settings.hub_corpus_repo`, a dataset repo) at the pinned revision."""

    def __init__(self, settings: Settings | None = None):
        self.hub = _Hub(settings)

    def fetch(self) -> Path:
        """Download the corpus files (cached after the first time) and return their snapshot directory.

        The directory is `<hub cache>/datasets--<owner>--<name>/snapshots/<commit sha>`: its name is the revision
        to record as provenance. It holds the public layout (`data.csv` and JSON vocab files).

        Raises:
            SourceError: the repo or revision is not on the Hub, holds no matching files, or the Hub kept failing.
        """
        settings = self.hub.settings
        repo, revision = settings.hub_corpus_repo, settings.hub_corpus_revision
        url = f"{self.hub.endpoint}/api/datasets/{repo}/revision/{revision}"
        try:
            info = self.hub.call(
                url, lambda: self.hub.api.dataset_info(repo, revision=revision, timeout=settings.hub_timeout)
            )
        except _Missing as error:
            raise SourceError(
                f"dataset {repo} at revision {revision} is not on the Hub: check MODELLENS_HUB_CORPUS_REPO and "
                "MODELLENS_HUB_CORPUS_REVISION",
                url,
            ) from error
        names = sorted(
            sibling.rfilename
            for sibling in info.siblings or []
            if any(fnmatch(sibling.rfilename, pattern) for pattern in settings.hub_corpus_files)
        )
        if not names:
            raise SourceError(f"no file of {repo} at {info.sha} matches {list(settings.hub_corpus_files)}", url)
        # Download at the resolved commit, not the requested name: every file then comes from the same snapshot.
        paths = [self.hub.download(repo, name, repo_type="dataset", revision=info.sha) for name in names]
        return paths[0].parents[len(PurePosixPath(names[0]).parts) - 1]


class HubLeaderboards:
    """The Hub's evaluation results: official benchmark datasets, their leaderboards, and models' `evalResults`.

    What the installed client exposes, and how it becomes records:

    - `list_datasets(benchmark="official")` (`GET /api/datasets?filter=benchmark:official`) lists the benchmarks;
      their cards give each dataset row's task and description.
    - `get_dataset_leaderboard(id)` (`GET /api/datasets/{id}/leaderboard`) ranks models on a benchmark with the Hub's
      `verified` flag, but names neither task nor metric.
    - `model_info(id, expand=["evalResults"])` (`GET /api/models/{id}`) gives each listed model's results with the
      benchmark task they score. A task id names one headline score of a benchmark, so it is the record's `metric`.

    A record is verified when the benchmark's leaderboard lists that model with that value and `verified: true`.
    """

    def __init__(self, settings: Settings | None = None):
        self.hub = _Hub(settings)

    def fetch(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return `(records, datasets)` frames with columns `RECORD_COLUMNS` and `DATASET_COLUMNS`."""
        fetched_at = _now()
        benchmarks = self._benchmarks()
        boards = {name: self._leaderboard(name) for name in benchmarks}
        verified = {(e.model_id, name, e.value) for name, board in boards.items() for e in board if e.verified}
        direction = {name: _higher_is_better(board) for name, board in boards.items()}
        listed = {(e.model_id, name) for name, board in boards.items() for e in board}
        rows, covered = [], set()
        for model in sorted({model for model, _ in listed}):
            url = f"{self.hub.endpoint}/api/models/{model}"
            info = self._model(url, model)
            for result in (info.eval_results or []) if info else []:
                if result.dataset_id not in benchmarks:
                    continue
                covered.add((model, result.dataset_id))
                rows.append(
                    {
                        "source": LEADERBOARD_SOURCE,
                        "task": _task(benchmarks[result.dataset_id]),
                        "dataset": result.dataset_id,
                        "model": model,
                        "metric": result.task_id,
                        "value": result.value,
                        "higher_is_better": direction[result.dataset_id],
                        "origin": url,
                        "revision": info.sha,
                        "fetched_at": fetched_at,
                        "verified": (model, result.dataset_id, result.value) in verified,
                    }
                )
        if listed - covered:
            log.warning(
                "%d leaderboard entries have no evalResults on their model (deleted, or results kept elsewhere): "
                "their task is unknown, so they are left out",
                len(listed - covered),
            )
        datasets = [
            {
                "source": LEADERBOARD_SOURCE,
                "task": _task(info),
                "dataset": name,
                "description_origin": "source",
                "description": info.description.strip(),
            }
            for name, info in benchmarks.items()
            if info.description and info.description.strip()
        ]
        return pd.DataFrame(rows, columns=RECORD_COLUMNS), pd.DataFrame(datasets, columns=DATASET_COLUMNS)

    def _benchmarks(self) -> dict[str, DatasetInfo]:
        url = f"{self.hub.endpoint}/api/datasets?filter=benchmark:official"
        listing = self.hub.call(
            url,
            lambda: list(self.hub.api.list_datasets(benchmark="official", expand=["cardData", "description", "tags"])),
            retry=False,
        )
        return {info.id: info for info in listing}

    def _leaderboard(self, name: str) -> list[DatasetLeaderboardEntry]:
        url = f"{self.hub.endpoint}/api/datasets/{name}/leaderboard"
        try:
            return self.hub.call(
                url,
                lambda: self.hub.api.get_dataset_leaderboard(
                    name, base_model_only=False, timeout=self.hub.settings.hub_timeout
                ),
            )
        except _Missing:
            log.warning("%s: benchmark has no leaderboard (404), skipped", url)
            return []

    def _model(self, url: str, model: str) -> ModelInfo | None:
        try:
            return self.hub.call(
                url,
                lambda: self.hub.api.model_info(
                    model, expand=["evalResults", "sha"], timeout=self.hub.settings.hub_timeout
                ),
            )
        except _Missing:
            log.warning("%s: model not found (404), its results are skipped", url)
            return None


class HubModels:
    """Model metadata from the Hub: size (safetensors), architecture, license, pipeline tag, tags, downloads, card text.

    Rows follow `models.csv` of the shared corpus plus `pipeline_tag, tags` (comma-separated), `downloads` (last 30
    days) and provenance `origin, revision, fetched_at`. Unknown is missing (NaN), never 0 or an empty string.
    """

    def __init__(self, settings: Settings | None = None):
        self.hub = _Hub(settings)

    def fetch(self, names: Iterable[str]) -> pd.DataFrame:
        """Metadata of the models named by Hub id (e.g. the `hf_id` of corpus models); absent ones are left out."""
        fetched_at = _now()
        rows = []
        for name in dict.fromkeys(names):
            url = f"{self.hub.endpoint}/api/models/{name}"
            try:
                info = self.hub.call(
                    url,
                    lambda name=name: self.hub.api.model_info(
                        name, expand=MODEL_FIELDS, timeout=self.hub.settings.hub_timeout
                    ),
                )
            except (_Missing, HFValidationError):  # not on the Hub, or not a repo id at all: stays unknown
                log.info("%s: not on the Hub, metadata stays unknown", url)
                continue
            rows.append(self._row(name, info, fetched_at))
        return _models_frame(rows)

    def fetch_new(self, since: datetime) -> pd.DataFrame:
        """Metadata of models created on the Hub since `since` (tz-aware), newest first, `hub_new_models` at most."""
        fetched_at = _now()
        url = f"{self.hub.endpoint}/api/models?sort=createdAt"
        listing = self.hub.call(
            url,
            lambda: list(
                takewhile(
                    lambda info: info.created_at is not None and info.created_at >= since,
                    self.hub.api.list_models(
                        sort="created_at", expand=MODEL_FIELDS, limit=self.hub.settings.hub_new_models
                    ),
                )
            ),
            retry=False,
        )
        return _models_frame([self._row(info.id, info, fetched_at) for info in listing])

    def _row(self, name: str, info: ModelInfo, fetched_at: str) -> dict[str, object]:
        card = info.card_data
        architectures = (info.config or {}).get("architectures") or []
        row: dict[str, object] = {
            "model": name,
            "n_parameters": float(info.safetensors.total) if info.safetensors and info.safetensors.total else math.nan,
            "architecture": architectures[0] if architectures else math.nan,
            "license": _license(card.license if card else None, card.get("license_name") if card else None, info.tags),
            "release_date": (
                info.created_at.date().isoformat()
                if info.created_at and info.created_at >= _HUB_DATES_START
                else math.nan
            ),
            # Safetensors weights on the Hub are downloadable weights; without them this call cannot tell.
            "open_weights": 1.0 if info.safetensors else math.nan,
            "hf_id": info.id,
            "model_description": self._card_text(info),
            "pipeline_tag": info.pipeline_tag or math.nan,
            "tags": ",".join(info.tags) if info.tags else math.nan,
            "downloads": info.downloads,
            "origin": f"{self.hub.endpoint}/api/models/{info.id}",
            "revision": info.sha or math.nan,
            "fetched_at": fetched_at,
        }
        known = [
            field.replace("model_description", "description")
            for field in (
                "n_parameters",
                "architecture",
                "license",
                "release_date",
                "open_weights",
                "model_description",
            )
            if not pd.isna(row[field])
        ]
        row["meta_source"] = f"hf_hub[{','.join([*known, 'hf_id'])}]"
        return row

    def _card_text(self, info: ModelInfo) -> str | float:
        """The model card's prose (README minus its YAML header), whitespace-collapsed and cut to size; NaN if none."""
        try:
            path = self.hub.download(info.id, "README.md", repo_type=None, revision=info.sha or "main")
        except _Missing:
            return math.nan
        content = path.read_text(encoding="utf-8", errors="replace")
        match = REGEX_YAML_BLOCK.search(content)
        text = " ".join((content[match.end() :] if match else content).split())
        return text[: self.hub.settings.hub_card_chars] or math.nan


def _models_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=MODEL_COLUMNS)
    frame["n_parameters"] = frame["n_parameters"].astype(float)
    frame["open_weights"] = frame["open_weights"].astype(float)
    frame["downloads"] = frame["downloads"].astype("Int64")
    return frame


def _license(license: str | list[str] | None, license_name: str | None, tags: list[str] | None) -> str | float:
    """The card's license (its own name when it says `other`), else the Hub's `license:` tag, else unknown."""
    value = license[0] if isinstance(license, list) and license else license
    if value == "other" and license_name:
        return str(license_name)
    if isinstance(value, str) and value:
        return value
    tagged = [tag.removeprefix("license:") for tag in tags or [] if tag.startswith("license:")]
    return tagged[0] if tagged else math.nan


def _task(info: DatasetInfo) -> str:
    """The benchmark card's first task category (`task_categories`, or the Hub's `task_categories:` tag)."""
    categories = getattr(info.card_data, "task_categories", None) or [
        tag.removeprefix("task_categories:") for tag in info.tags or [] if tag.startswith("task_categories:")
    ]
    if isinstance(categories, str):
        return categories
    return categories[0] if categories else BENCHMARK_TASK


def _higher_is_better(board: list[DatasetLeaderboardEntry]) -> int:
    """The Hub ranks a leaderboard best first: if the top rank scores below the bottom one, lower is better."""
    ranked = sorted(board, key=lambda entry: entry.rank)
    return int(not ranked or ranked[0].value >= ranked[-1].value)


def _transient_cause(error: BaseException) -> BaseException | None:
    """The error in `error`'s chain that another try may not meet (5xx, 429, timeout, dropped connection), if any.

    `hf_hub_download` wraps a failed metadata request in `LocalEntryNotFoundError`: the cause is further down.
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, httpx2.TimeoutException | httpx2.NetworkError | httpx2.RemoteProtocolError):
            return seen
        if isinstance(seen, HfHubHTTPError) and seen.response.status_code in _RETRY_STATUS:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _http_error(error: BaseException) -> HfHubHTTPError | None:
    """The HTTP error in `error`'s chain, if any (`hf_hub_download` raises `LocalEntryNotFoundError` from it)."""
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, HfHubHTTPError):
        seen = seen.__cause__ or seen.__context__
    return seen


def _describe(error: BaseException) -> str:
    if isinstance(error, HfHubHTTPError):
        return f"HTTP {error.response.status_code}"
    if isinstance(error, httpx2.TimeoutException):
        return f"a timeout ({type(error).__name__})"
    return f"{type(error).__name__}: {error}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------------------------------
# The registered sources: `modellens ingest --source hf-corpus|hf-leaderboards|hf-models`
# ----------------------------------------------------------------------------------------------------------------------

NEW_MODELS_WINDOW = timedelta(days=1)
"""`hf-models` also takes the models created on the Hub in this window before a run: the nightly cadence."""


@dataclass(frozen=True)
class HubCorpusSource:
    """`hf-corpus`: the pinned corpus files, read exactly like a local drop of the public layout."""

    settings: Settings
    name: str = "hf-corpus"

    def fetch(self, seen: Collection[str]) -> Iterable[Drop]:
        return LocalSource((HubCorpus(self.settings).fetch(),), name=self.name).fetch(seen)


@dataclass(frozen=True)
class HubLeaderboardSource:
    """`hf-leaderboards`: the Hub's evaluation results, one drop per model revision (a re-run adds nothing new)."""

    settings: Settings
    name: str = LEADERBOARD_SOURCE

    def fetch(self, seen: Collection[str]) -> Iterable[Drop]:
        records, datasets = HubLeaderboards(self.settings).fetch()
        origin = f"{self.settings.hub_endpoint}/api/datasets?filter=benchmark:official"
        drops = drops_from_frames(self.name, origin, _now(), records=records, datasets=datasets)
        return [drop for drop in drops if drop.revision not in seen]


@dataclass(frozen=True)
class HubModelSource:
    """`hf-models`: Hub metadata of the store's models that have a Hub id, and of models listed since yesterday."""

    settings: Settings
    name: str = "hf-models"

    def fetch(self, seen: Collection[str]) -> Iterable[Drop]:
        hub = HubModels(self.settings)
        models = pd.concat(
            [hub.fetch(_hub_ids(Store(self.settings.store_dir))), hub.fetch_new(datetime.now(UTC) - NEW_MODELS_WINDOW)],
            ignore_index=True,
        )
        models = models.reindex(columns=[*TABLES["models"], *PROVENANCE])  # no family from the Hub: unknown
        drops = drops_from_frames(self.name, f"{self.settings.hub_endpoint}/api/models", _now(), models=models)
        return [drop for drop in drops if drop.revision not in seen]


def _hub_ids(store: Store) -> list[str]:
    """Hub ids of the store's models: a model's `hf_id`, else its name when it has the `owner/name` shape of one
    (most leaderboards name models by Hub id), for the models table and every model with records."""
    if store.current() is None:
        return []
    models = store.read("models", columns=["model", "hf_id"])
    names = pd.concat([models["hf_id"].fillna(models["model"]), store.read("records", columns=["model"])["model"]])
    names = names.dropna().astype(str).drop_duplicates()
    return sorted(names[names.str.fullmatch(r"[\w.\-]+/[\w.\-]+")])


for _source in (HubCorpusSource, HubLeaderboardSource, HubModelSource):
    register_source(_source.name)(_source)
