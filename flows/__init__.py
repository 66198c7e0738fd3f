"""Orchestration of the ModelLens library: Prefect flows that train, track and promote, and the MLflow registry.

`lens` knows nothing of Prefect or MLflow; this package imports `lens` and wires it into them. The flows are thin
wiring (`train`, `promote`); the work is in small domain modules: `tracking` (MLflow runs), `plots`, `evaluation`
(scoring registered models and baselines), `pyfunc` (the registered model), `gate` (the promotion decision) and
`registry` (aliases and the audit trail on versions). `flows.cli` adds the platform commands to `modellens`.
"""
