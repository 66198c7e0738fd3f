# Every target runs inside .venv, which `make setup` creates from the pinned lock file.
VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
BIN := $(VENV)/bin
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export HF_HUB_DISABLE_TELEMETRY := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup refresh stop test check style bench ui serve schedule lock clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

# The main job: one full refresh on the embedded defaults (sqlite MLflow, Prefect without a server, local Ray) from
# the settings' sources (../shared/corpus), then the API on 127.0.0.1:8000 in the background, one sample request, and
# where to look. A second `make refresh` finds nothing new and retrains nothing. `make stop` stops the service.
# One torch thread: on 2 shared cores a second OpenMP thread stalls training when anything else runs.
refresh: export OMP_NUM_THREADS := 1
refresh: setup
	$(BIN)/modellens refresh
	$(BIN)/modellens serve --detach
	$(BIN)/modellens ask "Accented English conversational speech recorded on phones" \
	    --task "Automatic Speech Recognition" --metric WER -k 5
	@echo "MLflow UI: make ui, then open http://127.0.0.1:5000 (runs, versions, the @champion alias)"
	@echo "Web page: http://127.0.0.1:8000/  API docs: http://127.0.0.1:8000/docs  Stop the service: make stop"

stop: setup
	$(BIN)/modellens stop

test: setup
	$(BIN)/pytest

check: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

style: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Load speed, ingest + validate speed, ranker training time and latency, the quality of every ranker on all four
# splits of the full corpus, and the ModelLens ablations on held-out datasets: writes bench/results/. One torch
# thread (2 cores, shared), except for the ranker's training time, whose target is full training on every core.
RANKERS := random,popularity,global-mean,task-mean,text-nn,dataset-knn,matrix-factorisation,lambdarank,modellens
bench: export OMP_NUM_THREADS := 1
bench: setup
	$(BIN)/python bench/corpus_load.py
	$(BIN)/python bench/ingest.py
	OMP_NUM_THREADS=$$(nproc) $(BIN)/python bench/ranker.py
	$(BIN)/modellens evaluate --split all --rankers $(RANKERS)
	$(BIN)/modellens evaluate --split new_dataset --rankers modellens-no-text,modellens-no-ids,modellens-no-evidence
	$(BIN)/python bench/quality_breakdown.py
	$(BIN)/python bench/llm_folds.py

# The MLflow UI on 127.0.0.1:5000 over $MODELLENS_HOME's runs and registry: one worker, no job runner (STACK_NOTES).
ui: setup
	$(BIN)/modellens ui

# The recommendation API on 127.0.0.1:8000 (OpenAPI at /docs) from the registry's @champion, following the alias;
# Ctrl-C stops it. One torch thread per replica: 2 cores, shared.
serve: export OMP_NUM_THREADS := 1
serve: setup
	$(BIN)/modellens serve

# The nightly-refresh deployment of deploy/prefect.yaml (02:00 UTC), served from this process until Ctrl-C.
schedule: setup
	$(BIN)/modellens schedule

# Re-pin the lock file from the current environment (torch stays at the exact CPU release).
lock: setup
	$(BIN)/pip freeze --exclude-editable | sed 's/^torch==2.13.0+cpu$$/torch==2.13.0/' > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
