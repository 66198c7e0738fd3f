"""A small fake Hugging Face Hub on 127.0.0.1, for testing the Hub sources through the real `huggingface_hub` client.

`huggingface_hub` 2.x talks through httpx2, which request-mocking libraries do not intercept, so the honest test is
a server: this one answers the endpoints the sources call, with the Hub's payload shapes and headers (`Link` paging,
`X-Repo-Commit`, `ETag`, `X-Error-Code` on 404; never `X-Xet-Hash`, which would switch the client to Xet downloads).
Tests seed repos, then inject failures (`fail`: N answers with a status, then normal service) or slowness (`slow`), and
read `requests` to see what the client really asked for.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse


@dataclass
class FakeRepo:
    """One repo at one commit: its API fields (camelCase, as the Hub sends them) and its files."""

    id: str
    sha: str
    fields: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def payload(self, expand: list[str]) -> dict[str, Any]:
        """The Hub's JSON for this repo: with `expand`, only those properties (plus the id), as the Hub does."""
        full = {"_id": self.sha[:24], "id": self.id, "sha": self.sha, **self.fields}
        full["siblings"] = [{"rfilename": name} for name in self.files]
        if not expand:
            return full
        return {key: value for key, value in full.items() if key in {"_id", "id", *expand}}


@dataclass
class _Fault:
    path: str
    method: str | None
    times: int
    status: int | None = None
    delay: float = 0.0


@dataclass
class FakeHub:
    """Repos, leaderboards, injected faults and a log of `(method, path)` of every request received."""

    models: dict[str, FakeRepo] = field(default_factory=dict)
    datasets: dict[str, FakeRepo] = field(default_factory=dict)
    leaderboards: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    page_size: int = 2
    url: str = ""
    """Base URL while `serve` runs it."""
    requests: list[tuple[str, str]] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)

    def add_model(self, repo: FakeRepo) -> None:
        self.models[repo.id] = repo

    def add_dataset(self, repo: FakeRepo) -> None:
        self.datasets[repo.id] = repo

    def fail(self, path: str, status: int = 503, times: int = 1, method: str | None = None) -> None:
        """Answer the next `times` requests whose path starts with `path` with `status`, then serve normally."""
        self._faults.append(_Fault(path, method, times, status=status))

    def slow(self, path: str, seconds: float, times: int = 1, method: str | None = None) -> None:
        """Hold the next `times` answers under `path` for `seconds` (longer than the client's timeout = a timeout)."""
        self._faults.append(_Fault(path, method, times, delay=seconds))

    def count(self, method: str, path: str) -> int:
        """How many `method` requests were received for paths starting with `path`."""
        return sum(1 for m, p in self.requests if m == method and p.startswith(path))

    def app(self) -> FastAPI:
        """The ASGI app serving this hub's state."""
        app = FastAPI()

        @app.middleware("http")
        async def record_and_inject(request: Request, call_next):
            self.requests.append((request.method, request.url.path))
            for fault in self._faults:
                matches = request.url.path.startswith(fault.path) and fault.method in (None, request.method)
                if fault.times > 0 and matches:
                    fault.times -= 1
                    if fault.status is not None:
                        return JSONResponse({"error": "injected failure"}, status_code=fault.status)
                    await asyncio.sleep(fault.delay)
                    break
            return await call_next(request)

        @app.get("/api/models")
        def list_models(request: Request, sort: str | None = None, limit: int | None = None, cursor: int = 0):
            repos = list(self.models.values())
            if sort == "createdAt":  # the Hub sorts descending
                repos.sort(key=lambda repo: repo.fields.get("createdAt", ""), reverse=True)
            return self._page(request, repos, limit, cursor)

        @app.get("/api/models/{owner}/{name}")
        def model_info(owner: str, name: str, expand: list[str] = Query(default=[])):  # noqa: B008
            return self._info(self.models, f"{owner}/{name}", None, expand)

        @app.get("/api/datasets")
        def list_datasets(request: Request, limit: int | None = None, cursor: int = 0):
            wanted = set(request.query_params.getlist("filter"))
            repos = [repo for repo in self.datasets.values() if wanted <= set(repo.fields.get("tags", []))]
            return self._page(request, repos, limit, cursor)

        @app.get("/api/datasets/{owner}/{name}/revision/{revision}")
        def dataset_info_at(owner: str, name: str, revision: str, expand: list[str] = Query(default=[])):  # noqa: B008
            return self._info(self.datasets, f"{owner}/{name}", revision, expand)

        @app.get("/api/datasets/{owner}/{name}/leaderboard")
        def leaderboard(owner: str, name: str):
            board = self.leaderboards.get(f"{owner}/{name}")
            if board is None:
                return JSONResponse({"error": "This dataset has no leaderboard"}, status_code=404)
            return board

        @app.api_route("/datasets/{owner}/{name}/resolve/{revision}/{filename:path}", methods=["GET", "HEAD"])
        def resolve_dataset_file(request: Request, owner: str, name: str, revision: str, filename: str):
            return self._file(request, self.datasets, f"{owner}/{name}", revision, filename)

        @app.api_route("/{owner}/{name}/resolve/{revision}/{filename:path}", methods=["GET", "HEAD"])
        def resolve_model_file(request: Request, owner: str, name: str, revision: str, filename: str):
            return self._file(request, self.models, f"{owner}/{name}", revision, filename)

        return app

    def _page(self, request: Request, repos: list[FakeRepo], limit: int | None, cursor: int) -> Response:
        """One page of a listing; a `Link: <...>; rel="next"` header points at the next, as on the Hub."""
        expand = request.query_params.getlist("expand")
        size = min(limit or self.page_size, self.page_size)
        page = repos[cursor : cursor + size]
        response = JSONResponse([repo.payload(expand) for repo in page])
        if cursor + size < len(repos):
            query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
            next_url = (
                f"{request.base_url}{request.url.path.lstrip('/')}?{urlencode([*query, ('cursor', cursor + size)])}"
            )
            response.headers["Link"] = f'<{next_url}>; rel="next"'
        return response

    @staticmethod
    def _resolve(repos: dict[str, FakeRepo], repo_id: str, revision: str | None) -> FakeRepo | Response:
        repo = repos.get(repo_id)
        if repo is None:
            return _not_found("RepoNotFound", "Repository not found")
        if revision not in (None, "main", repo.sha):
            return _not_found("RevisionNotFound", "Invalid rev id: " + revision)
        return repo

    def _info(self, repos: dict[str, FakeRepo], repo_id: str, revision: str | None, expand: list[str]):
        repo = self._resolve(repos, repo_id, revision)
        return repo if isinstance(repo, Response) else repo.payload(expand)

    def _file(self, request: Request, repos: dict[str, FakeRepo], repo_id: str, revision: str, filename: str):
        repo = self._resolve(repos, repo_id, revision)
        if isinstance(repo, Response):
            return repo
        if filename not in repo.files:
            response = _not_found("EntryNotFound", f"{filename} does not exist on {revision}")
            response.headers["X-Repo-Commit"] = repo.sha  # the client caches the absence per commit
            return response
        content = repo.files[filename]
        headers = {
            "X-Repo-Commit": repo.sha,
            "ETag": f'"{hashlib.sha1(content).hexdigest()}"',  # a git blob id, as for a non-LFS file
            "Content-Length": str(len(content)),
        }
        if request.method == "HEAD":
            return Response(headers=headers)
        return Response(content, headers=headers, media_type="application/octet-stream")


def _not_found(code: str, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=404, headers={"X-Error-Code": code, "X-Error-Message": message})


@contextmanager
def serve(hub: FakeHub) -> Iterator[str]:
    """Run `hub` with uvicorn in a background thread on a free loopback port; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # A held-back (slow) answer must not hold the shutdown for long.
    server = uvicorn.Server(uvicorn.Config(hub.app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake Hub did not start")
        time.sleep(0.01)
    hub.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield hub.url
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
