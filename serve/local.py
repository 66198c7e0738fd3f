"""Run the serving application on this machine: a private Ray instance, Serve's HTTP proxy, the deployment.

`modellens serve` and the tests start it the same way. Ray's unix sockets live under its temp dir, whose path must be
short (see `deploy.ray_train`): `<home>/ray` when that is short enough, else a fresh directory under /tmp.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from lens.settings import Settings

APP_NAME = "modellens"
_MAX_TEMP_DIR = 43  # Ray appends up to 64 characters to it and unix socket paths end at 107


def temp_dir(settings: Settings) -> Path:
    """Where this instance's Ray sessions go: private to this home, never a Ray directory another process uses."""
    path = settings.home.absolute() / "ray"
    if len(str(path)) <= _MAX_TEMP_DIR:
        return Settings.ensure(path)
    return Path(tempfile.mkdtemp(prefix="modellens-ray-", dir="/tmp"))


def start(settings: Settings, num_cpus: int = 2) -> str:
    """Start Ray and Serve locally (bound to `settings.host:serve_port`) and deploy the app; returns its base URL.

    Replicas inherit this process's environment, so they read the same settings (home, registry, token).
    """
    import ray
    from ray import serve

    from serve.app import app

    ray.init(
        address="local",  # never join a cluster someone else started on this machine
        num_cpus=num_cpus,
        include_dashboard=False,
        object_store_memory=100 * 1024**2,
        _temp_dir=str(temp_dir(settings)),
    )
    serve.start(http_options={"host": settings.host, "port": settings.serve_port})
    serve.run(app, name=APP_NAME, route_prefix="/")
    return settings.serve_url


def stop() -> None:
    """Shut down Serve and the Ray instance `start` made."""
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
