"""Serving: the `@champion` ModelLens behind a Ray Serve deployment with a FastAPI ingress.

`serve` imports `lens` and `flows`, never the reverse. Ray reads its auth and telemetry switches when it is imported,
so they are set here, before any module of this package imports Ray (values the caller set win). Token auth stays on
(Ray's default): Ray binds its internal gRPC servers on every interface whatever address it is given, and without a
token anyone who reaches this machine could join the instance and run code in it (`serve.local` gives each local
instance its own token).
"""

import os

for _name, _value in {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_name, _value)
