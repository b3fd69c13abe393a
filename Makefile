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
MLFLOW_URI ?= sqlite:///$(CURDIR)/mlflow.db
JUPYTER_PORT ?= 8888
PYTEST_ARGS ?=

# No network calls at run time: Kedro's telemetry stays off (see also .telemetry).
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
# kedro-mlflow's pipeline model class makes MLflow warn about type hints at every start-up.
export PYTHONWARNINGS := ignore::UserWarning:mlflow.pyfunc.utils.data_validation

.PHONY: install run test lint format notebook test-browser browser-deps demo-data fma-small viz mlflow-ui serve clean-data

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

## Run the test suite (the browser tests have their own target below).
test: install
	$(BIN)/python -m pytest -m "not browser" $(PYTEST_ARGS)

## The quick loop (about 2 minutes): the tests above without those marked slow in tests/.
.PHONY: test-fast
test-fast: install
	$(BIN)/python -m pytest -m "not browser and not slow" $(PYTEST_ARGS)

## Lint (ruff: pyflakes, pycodestyle, isort, bugbear, pyupgrade) and check the formatting.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Format the tree in place (ruff format, 100 columns).
format: install
	$(BIN)/ruff format .

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

## MLflow UI over the project's local store on http://127.0.0.1:$(MLFLOW_PORT)
mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_URI) --host 127.0.0.1 --port $(MLFLOW_PORT)

## Serve the best model (logged by the serving pipeline) as a REST API on 127.0.0.1:$(SERVE_PORT)
## POST {"dataframe_split": {"columns": ["path"], "data": [["/abs/song.mp3"]]}} to /invocations
serve: install
	$(BIN)/genre-serve --host 127.0.0.1 --port $(SERVE_PORT) --tracking-uri $(MLFLOW_URI)

## Remove every generated dataset and model (keeps the raw data and the MLflow store).
clean-data:
	find data/02_intermediate data/03_primary data/04_feature data/05_model_input \
	  data/06_models data/07_model_output data/08_reporting -mindepth 1 ! -name .gitkeep -delete
