"""Run the serving application on this machine: a private Ray instance, Serve's HTTP proxy, the deployment.

`modellens serve` and the tests start it the same way. Ray's unix sockets live under its temp dir, whose path must be
short (see `deploy.ray_train`): `<home>/ray` when that is short enough, else a fresh directory under /tmp.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from lens.settings import Settings

APP_NAME = "modellens"
_MAX_TEMP_DIR = 43  # Ray appends up to 64 characters to it and unix socket paths end at 107
SERVE_ENVIRONMENT = {
    # Ray Serve's throughput mode: gRPC from the proxy to the replicas, the router and the handlers on the replica's
    # own event loop, buffered request logs, a frozen GC after start (one replica, 16 clients on 2 cores: 82 -> 103
    # requests/s)...
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    # ...without its direct ingress (an HTTP server in every replica, for an HAProxy in front): the proxy on
    # `serve_port` stays the one way in.
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0",
}
"""Read by every Serve process when it starts, so set before Ray is; a value the caller has set wins."""


def temp_dir(settings: Settings) -> Path:
    """Where this instance's Ray sessions go: private to this home, never a Ray directory another process uses."""
    path = settings.home.absolute() / "ray"
    if len(str(path)) <= _MAX_TEMP_DIR:
        return Settings.ensure(path)
    return Path(tempfile.mkdtemp(prefix="modellens-ray-", dir="/tmp"))


def start(settings: Settings) -> str:
    """Start Ray and Serve locally (bound to `settings.host:serve_port`) and deploy the app with
    `settings.serve_replicas` replicas; returns its base URL.

    Replicas inherit this process's environment, so they read the same settings (home, registry, token). Ray is
    told of one CPU per replica (each asks for one), at least this machine's cores.
    """
    for name, value in SERVE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    import ray
    from ray import serve

    from serve.app import ModelLensServer

    ray.init(
        address="local",  # never join a cluster someone else started on this machine
        num_cpus=max(os.cpu_count() or 1, settings.serve_replicas),
        include_dashboard=False,
        object_store_memory=100 * 1024**2,
        _temp_dir=str(temp_dir(settings)),
    )
    serve.start(http_options={"host": settings.host, "port": settings.serve_port})
    app = ModelLensServer.options(num_replicas=settings.serve_replicas).bind()
    serve.run(app, name=APP_NAME, route_prefix="/")
    return settings.serve_url


def stop() -> None:
    """Shut down Serve and the Ray instance `start` made."""
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
