"""Serving: the `@champion` ModelLens behind a Ray Serve deployment with a FastAPI ingress.

`serve` imports `lens` and `flows`, never the reverse. Ray reads its auth and telemetry switches when it is imported,
so they are set here, before any module of this package imports Ray (values the caller set win).
"""

import os

for _name, _value in {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_name, _value)
