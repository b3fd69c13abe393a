# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_ROOT ?= data/01_raw/demo
ENV ?= demo
VIZ_PORT ?= 4141
MLFLOW_PORT ?= 5000
SERVE_PORT ?= 5001
# The MLflow store: empty = the one definition of music_genre.tracking (MLFLOW_TRACKING_URI, else
# the environment's mlflow.yml: ./mlflow.db for base/demo, the shared server for ENV=team).
MLFLOW_URI ?=
MLFLOW_SERVER_PORT ?= 5002
TRACKING_URI = $(or $(MLFLOW_URI),$(shell KEDRO_ENV=$(ENV) $(BIN)/python -m music_genre.tracking))
JUPYTER_PORT ?= 8888
DOCS_PORT ?= 8000
PYTEST_ARGS ?=
# oneDNN instruction sets `make test-numeric` caps TensorFlow at, one pass each: what a processor
# without AVX-512 (AVX2) or without AMX/BF16 (AVX512_CORE, Skylake-class) computes.
NUMERIC_ISAS ?= AVX2 AVX512_CORE

# No network calls at run time: Kedro's telemetry stays off (see also .telemetry).
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
# kedro-mlflow's pipeline model class makes MLflow warn about type hints at every start-up.
export PYTHONWARNINGS := ignore::UserWarning:mlflow.pyfunc.utils.data_validation

.PHONY: install run test test-numeric check-run mutation lint format docs docs-serve notebook test-browser browser-deps demo-data fma-small viz mlflow-ui serve clean-data mlflow-server test-team test-serve-env

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# musicnn ships real music-pretrained weights in its wheel; only its data files are used,
	# and its metadata pins an ancient numpy, hence --no-deps.
	$(BIN)/python -m pip install --quiet --no-deps musicnn==0.1.0
	touch $(STAMP)

## Generate the demo dataset if absent, then run every pipeline on it (offline).
run: demo-data
	$(BIN)/kedro run --env $(ENV)

## Run the test suite (the browser tests and the checks of make run's outputs have their own
## targets below).
test: install
	$(BIN)/python -m pytest -m "not browser and not after_run and not team and not serve_env" $(PYTEST_ARGS)

## Check what `make run` produced in this checkout: results tables against their predictions,
## summary.md, the MLflow runs, the served model over HTTP, both notebooks on the full run.
check-run: install
	$(BIN)/python -m pytest -m after_run tests/after_run $(PYTEST_ARGS)

## Mutation testing (mutmut, one worker) of evaluation, fusion, the split logic, the augmentation,
## the log-mel front end and the stores' damage checks; prints the score per module and every
## surviving mutant (`mutmut show NAME` shows one). Not in CI: about ten minutes on two cores.
mutation: install
	$(BIN)/python -m pip install --quiet -e ".[mutation]"
	$(BIN)/python tools/mutation.py

## The float-comparing tests (marker `numeric`) once per capped instruction set, each pass in
## its own processes: float32 results differ in the last bits between processors.
# The AVX2 pass caps numpy's SIMD loops and OpenBLAS's kernels too (librosa, scikit-learn and the
# demo's synthesis run on them): numpy refuses to disable a feature the machine lacks, hence the
# list of the machine's own AVX-512 groups.
test-numeric: install
	@set -e; for isa in $(NUMERIC_ISAS); do \
	  if [ "$$isa" = AVX2 ]; then \
	    npy_off=$$($(BIN)/python -c "from numpy._core._multiarray_umath import __cpu_features__ as f; print(' '.join(k for k in ('X86_V4', 'AVX512_ICL', 'AVX512_SPR') if f.get(k)))"); \
	    blas=Haswell; \
	  else npy_off=; blas=; fi; \
	  echo "== numeric tests with oneDNN capped at $$isa (numpy off: $${npy_off:-none}; OpenBLAS core: $${blas:-auto})"; \
	  env $${npy_off:+NPY_DISABLE_CPU_FEATURES="$$npy_off"} $${blas:+OPENBLAS_CORETYPE=$$blas} \
	    ONEDNN_MAX_CPU_ISA=$$isa $(BIN)/python -m pytest -m "numeric and not browser and not after_run" $(PYTEST_ARGS); \
	done

## The quick loop (about 2 minutes): the tests above without those marked slow in tests/.
.PHONY: test-fast
test-fast: install
	$(BIN)/python -m pytest -m "not browser and not slow and not after_run and not team and not serve_env" $(PYTEST_ARGS)

## Lint (ruff: pyflakes, pycodestyle, isort, bugbear, pyupgrade), check the formatting, and
## check the package's layers (lint-imports: the contracts in pyproject's [tool.importlinter])
## and type-check src/ (mypy: [tool.mypy]).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

## Format the tree in place (ruff format, 100 columns).
format: install
	$(BIN)/ruff format .

## Build the documentation site into site/ (MkDocs, strict: a broken link or reference fails);
## the configuration reference is generated from the parameter schemas first.
docs: install
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	$(BIN)/python docs/gen_config_reference.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## The documentation on http://127.0.0.1:$(DOCS_PORT), rebuilt when a page changes.
docs-serve: docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

## The notebooks (notebooks/*.ipynb) on the catalog, in JupyterLab on http://127.0.0.1:$(JUPYTER_PORT)
notebook: install
	$(BIN)/python -m pip install --quiet -e ".[notebook]"
	$(BIN)/kedro jupyter lab --env $(ENV) --ip 127.0.0.1 --port $(JUPYTER_PORT) --no-browser

## What the browser tests need: Debian's chromium (root) and the playwright driver.
browser-deps: install
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	$(BIN)/python -m pip install --quiet -e ".[browser]"

## End-to-end tests: MLflow UI and kedro-viz rendered in headless Chromium.
test-browser: browser-deps
	$(BIN)/python -m pytest -m browser $(PYTEST_ARGS)

## Synthesized demo dataset in FMA's exact layout (skipped when it exists).
demo-data: install
	$(BIN)/genre-demo-data --root $(DEMO_ROOT)

## Download fma_metadata.zip and fma_small.zip (7.5 GB), verify sha1, extract into data/01_raw.
fma-small: install
	$(BIN)/fma-download --dest data/01_raw --subset small

## Pipeline graph with dataset previews on http://127.0.0.1:$(VIZ_PORT)
viz: install
	$(BIN)/kedro viz run --host 127.0.0.1 --port $(VIZ_PORT) --env $(ENV) --no-browser

## MLflow UI over the project's store on http://127.0.0.1:$(MLFLOW_PORT)
mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri "$(TRACKING_URI)" --host 127.0.0.1 --port $(MLFLOW_PORT)

## Serve the champion genre predictor (models:/genre_predictor@champion of the Model Registry)
## as a REST API on 127.0.0.1:$(SERVE_PORT); MODEL_URI=models:/...|runs:/... serves another.
## POST {"dataframe_split": {"columns": ["audio", "name"], "data": [["<base64 of song.mp3>", "song.mp3"]]}} to /invocations
serve: install
	$(BIN)/genre-serve --host 127.0.0.1 --port $(SERVE_PORT) --tracking-uri "$(TRACKING_URI)" \
	  $(if $(MODEL_URI),--model-uri "$(MODEL_URI)")

## A team's MLflow tracking server, locally on http://127.0.0.1:$(MLFLOW_SERVER_PORT): PostgreSQL
## backend store, S3-compatible artefact store (moto), under .mlflow-server/ (Ctrl-C stops all).
## Use it with `kedro run --env team`, `ENV=team make serve` (docs/working-as-a-team.md).
mlflow-server: install
	$(BIN)/python -m pip install --quiet -e ".[team]"
	$(BIN)/python -m music_genre.commands.team_server --port $(MLFLOW_SERVER_PORT) --root .mlflow-server

## The team server end to end: PostgreSQL + moto S3 + mlflow server, a tiny kedro run against
## it, its registered champion served (installs Debian's PostgreSQL when root and missing).
test-team: install
	$(BIN)/python -m pip install --quiet -e ".[team]"
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  [ "$$(id -u)" != 0 ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)
	$(BIN)/python -m pytest -m team tests/test_team_server.py $(PYTEST_ARGS)

## The logged genre predictor served from a fresh environment built from its own requirements
## (`mlflow models serve --env-manager uv` on 127.0.0.1, pip's package indexes handed to uv):
## a tiny predictor logged, a base64 MP3 request answered as in process (to 1e-5).
test-serve-env: install
	$(BIN)/python -m pip install --quiet -e ".[serve-env]"
	$(BIN)/python -m pytest -m serve_env tests/test_serve_env.py $(PYTEST_ARGS)

## Remove every generated dataset and model (keeps the raw data and the MLflow store).
clean-data:
	find data/02_intermediate data/03_primary data/04_feature data/05_model_input \
	  data/06_models data/07_model_output data/08_reporting -mindepth 1 ! -name .gitkeep -delete
