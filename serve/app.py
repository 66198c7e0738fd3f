"""The serving API: a Ray Serve deployment whose replicas answer from the registry's `@champion` (OpenAPI: `/docs`).

Each replica loads the version the alias names when it starts and then follows the alias: a watcher task re-reads it
every `serve_poll_seconds`, `reconfigure()` (a config-file deploy changing `user_config`) and `POST /admin/reload`
re-read it at once. A new version is loaded completely before the replica's reference is swapped, and each request
reads that reference once, so requests in flight finish on the version they started with and none fails in a swap.

    serve run deploy/serve.yaml      # or `modellens serve`, or `make serve`
"""

# No `from __future__ import annotations`: FastAPI must evaluate the endpoint signatures that Ray Serve's ingress
# rebinds, and string annotations there no longer resolve (`/openapi.json` and `Header()` parameters fail).
import asyncio
import logging
import re
import secrets
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Header, HTTPException, Response
from fastapi.responses import HTMLResponse, JSONResponse
from mlflow.exceptions import MlflowException
from pydantic import BaseModel
from ray import serve

from flows import tracking
from lens.rankers import Query
from lens.recommender import Recommendation as Pick
from lens.settings import Settings
from serve import schemas
from serve.model import ServedModel, load, resolve

log = logging.getLogger(__name__)

api = FastAPI(
    title="ModelLens",
    description="Recommend pretrained models for datasets nobody has benchmarked. Answers come from the registered "
    "model's `@champion` version, which the service follows as it moves.",
    version="1",
)
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
_PAGE = (Path(__file__).parent / "page.html").read_text()
"""The web page: self-contained HTML and script that query `POST /recommend` like any other client."""


class BodyLimit:
    """413 for a body over `serve_max_body_bytes`, judged by its declared length before anything reads it.

    A POST without a length (a chunked upload) gets 411: its size could only be learnt by reading it all. A plain
    ASGI middleware: Starlette's `@app.middleware("http")` would wrap every request in a task group and memory
    streams for what is a header check.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            refused = _refusal(scope)
            if refused is not None:
                return await refused(scope, receive, send)
        await self.app(scope, receive, send)


def _refusal(scope: dict) -> JSONResponse | None:
    headers = dict(scope["headers"])
    length = headers.get(b"content-length")
    limit = schemas.LIMITS.serve_max_body_bytes
    if length is None:
        if scope["method"] == "POST":
            return JSONResponse({"detail": "send a Content-Length header (chunked bodies are not accepted)"}, 411)
    elif not length.isdigit():
        return JSONResponse({"detail": f"Content-Length {length.decode('latin-1')!r} is not a byte count"}, 400)
    elif int(length) > limit:
        return JSONResponse({"detail": f"request body of {int(length)} bytes is over the {limit}-byte limit"}, 413)
    return None


api.add_middleware(BodyLimit)


def _query(body: schemas.PoolRequest) -> Query:
    return Query(
        dataset=body.dataset or schemas.UNKNOWN,
        task=body.task or schemas.UNKNOWN,
        metric=body.metric or schemas.UNKNOWN,
        description=body.description,
        higher_is_better=body.higher_is_better,
    )


def _url(name: str, hub: str) -> str | None:
    """The model's Hub page when its name is an `owner/name` Hub id; other names are not on the Hub."""
    return f"{hub}/{name}" if _HUB_ID.fullmatch(name) else None


def _params(value: float | None) -> int | None:
    return None if value is None else round(value)


def _json(answer: BaseModel) -> Response:
    """The answer, serialised once: returned as a model, FastAPI would validate it again against the route's
    `response_model` (which still documents it in the OpenAPI schema) before serialising it."""
    return Response(answer.model_dump_json(), media_type="application/json")


def _recommendation(rank: int, pick: Pick, hub: str) -> schemas.Recommendation:
    return schemas.Recommendation(
        rank=rank,
        model=pick.model,
        score=pick.score,
        params=_params(pick.n_parameters),
        license=pick.license,
        family=pick.family,
        url=_url(pick.model, hub),
        evidence=[
            schemas.Evidence(dataset=e.dataset, metric=e.metric, value=e.value, similarity=e.similarity)
            for e in pick.evidence
        ],
    )


@serve.deployment(ray_actor_options={"num_cpus": 1}, max_ongoing_requests=16)
@serve.ingress(api)
class ModelLensServer:
    """One replica: the served model, the alias it follows, and the watcher that follows it."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.client = tracking.connect(self.settings)
        self.alias = self.settings.serve_alias
        self.poll_seconds = self.settings.serve_poll_seconds
        self.lock = threading.Lock()  # one load at a time: the watcher, reconfigure and /admin/reload may overlap
        name = self.settings.registered_model
        self.served: ServedModel = load(name, self.alias, resolve(self.client, name, self.alias))
        self.watcher = asyncio.get_running_loop().create_task(self._watch())

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply `alias` and `poll_seconds` from a config-file deploy and load what the alias names now."""
        self.alias = str(user_config.get("alias", self.alias))
        self.poll_seconds = float(user_config.get("poll_seconds", self.poll_seconds))
        self.refresh()

    def refresh(self) -> bool:
        """Serve the version the alias names now; True when that changed the served version.

        The new version is loaded completely before the reference is swapped: until then every request is answered
        by the old one, and requests already holding the old one finish on it.
        """
        name = self.settings.registered_model
        with self.lock:
            named = resolve(self.client, name, self.alias)
            if str(named.version) == self.served.version and self.alias == self.served.alias:
                return False
            served = load(name, self.alias, named)
            log.info("serving %s version %s (was %s)", name, served.version, self.served.version)
            self.served = served
            return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # a registry outage or a broken version must not stop the watcher or the old model
                log.exception("could not follow @%s; still serving version %s", self.alias, self.served.version)

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(self) -> HTMLResponse:
        """A page where a person describes a dataset and sees the ranked models, their evidence and a chart."""
        return HTMLResponse(_PAGE)

    @api.post("/recommend", response_model=schemas.RecommendResponse)
    def recommend(self, body: schemas.RecommendRequest) -> Response:
        """The top-k models for a dataset description, with the evidence behind each (filters optional)."""
        served = self.served  # one version for the whole request, even if the alias moves meanwhile
        filters = body.filters or schemas.Filters()
        picks = served.recommender.recommend(
            _query(body),
            body.k,
            max_params=filters.max_params,
            licenses=filters.licenses or (),
            families=filters.families or (),
            min_params=filters.min_params,
            exclude=filters.exclude or (),
            candidates=body.candidates,
        )
        hub = self.settings.hub_endpoint
        answer = schemas.RecommendResponse(
            request_id=uuid.uuid4().hex,
            model_version=served.version,
            recommendations=[_recommendation(rank, pick, hub) for rank, pick in enumerate(picks, 1)],
        )
        return _json(answer)

    @api.post("/pool", response_model=schemas.PoolResponse)
    def pool(self, body: schemas.PoolRequest) -> Response:
        """Just the names of the top-k models: the fast path for routers that try a shortlist."""
        served = self.served
        top, _ = served.recommender.best(_query(body), body.k)
        names = served.recommender.bundle.models["name"].iloc[top].tolist()
        return _json(schemas.PoolResponse(request_id=uuid.uuid4().hex, model_version=served.version, models=names))

    @api.get("/models/{name:path}", response_model=schemas.ModelInfo)
    def model(self, name: str) -> schemas.ModelInfo:
        """A known model's metadata and every published result the served version learnt from."""
        served = self.served
        recommender = served.recommender
        row = recommender.index.get(recommender.names.key(name))
        if row is None:
            raise HTTPException(
                404,
                f"model {name!r} is not among the known models of version {served.version}; "
                "POST /recommend with it in `candidates` still scores it as a cold start",
            )
        meta = recommender.bundle.models.iloc[row]
        positions = recommender.by_model.get(row, [])
        seen = recommender.observations.iloc[positions].join(recommender.bundle.groups, on="group_id")
        observations = [
            schemas.Observation(
                source=o.source,
                task=o.task,
                dataset=o.dataset,
                metric=o.metric,
                value=o.value if o.higher_is_better else -o.value,  # stored as higher-is-better; shown as published
                rank=o.rank,
                of=o.of,
            )
            for o in seen.itertuples()
        ]
        params = float(meta["n_parameters"])
        return schemas.ModelInfo(
            model=str(meta["name"]),
            params=None if np.isnan(params) else round(params),
            license=meta["license"] if isinstance(meta["license"], str) else None,
            family=str(meta["family"]),
            url=_url(str(meta["name"]), self.settings.hub_endpoint),
            observations=observations,
        )

    @api.get("/tasks", response_model=schemas.Tasks)
    def tasks(self) -> schemas.Tasks:
        """Tasks the served version has seen; any other task is accepted as a cold start."""
        served = self.served
        return schemas.Tasks(model_version=served.version, tasks=sorted(set(served.recommender.bundle.groups["task"])))

    @api.get("/metrics", response_model=schemas.Metrics)
    def metrics(self) -> schemas.Metrics:
        """Metrics the served version has seen; any other metric is accepted as a cold start."""
        served = self.served
        names = sorted(set(served.recommender.bundle.groups["metric"]))
        return schemas.Metrics(model_version=served.version, metrics=names)

    @api.get("/healthz", response_model=schemas.Health)
    def healthz(self) -> schemas.Health:
        return schemas.Health(status="ok", model_version=self.served.version)

    @api.get("/version", response_model=schemas.VersionInfo)
    def version(self) -> schemas.VersionInfo:
        """The registry version being served, the alias it came from, and the snapshot and run that made it."""
        served = self.served
        return schemas.VersionInfo(
            model_version=served.version,
            alias=served.alias,
            snapshot=served.snapshot,
            run_id=served.run_id,
            known_models=len(served.recommender.bundle.models),
        )

    @api.post("/admin/reload", response_model=schemas.ReloadResponse)
    def reload(self, authorization: Annotated[str | None, Header()] = None) -> schemas.ReloadResponse:
        """Re-read the alias now instead of at the next poll (`Authorization: Bearer <serve_reload_token>`)."""
        token = self.settings.serve_reload_token
        if authorization is None or not authorization.startswith("Bearer "):
            raise HTTPException(401, "send `Authorization: Bearer <token>`", {"WWW-Authenticate": "Bearer"})
        if token is None:
            raise HTTPException(403, "reload is disabled: no MODELLENS_SERVE_RELOAD_TOKEN is set")
        if not secrets.compare_digest(
            authorization.removeprefix("Bearer ").encode(), token.get_secret_value().encode()
        ):
            raise HTTPException(403, "wrong reload token")
        try:
            changed = self.refresh()
        except MlflowException as exc:  # the registry, not the request, is at fault: say so, keep serving
            raise HTTPException(503, f"could not re-read @{self.alias}: {exc.message}") from exc
        return schemas.ReloadResponse(model_version=self.served.version, changed=changed)


app = ModelLensServer.bind()
"""The application `serve run serve.app:app` and `deploy/serve.yaml` start."""
