"""End-to-end: the MLflow UI and kedro-viz render this project's runs and pipelines in a real
headless Chromium. Needs `make browser-deps` (Debian chromium + the playwright driver).

Screenshots land in data/08_reporting/screens/ for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.processes import free_port, stop_process_group

pytestmark = pytest.mark.browser

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCREENS = PROJECT_ROOT / "data" / "08_reporting" / "screens"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BIN = Path(sys.executable).parent
# Chromium on a machine without network: no background connections, no sandbox as root.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _wait_for_http(url: str, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


@contextmanager
def _serve(command: list[str], url: str, cwd: Path, log: Path) -> Iterator[str]:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}
    with open(log, "w") as log_file:
        # A session of its own: kedro-viz serves from a child process, and stopping only the
        # parent would leave that child running (holding the port and ~1 GB) after the test.
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            try:
                _wait_for_http(url, process)
            except (RuntimeError, TimeoutError) as exc:
                raise RuntimeError(f"{exc}; its log ends:\n{log.read_text()[-3000:]}") from exc
            yield url
        finally:
            stop_process_group(process, grace_s=20.0)  # fails if the group survives


@contextmanager
def _mlflow_ui(uri: str, folder: Path) -> Iterator[str]:
    """`mlflow ui` on the store ``uri``, on a free port of 127.0.0.1 (stopped on exit)."""
    port = free_port()
    command = [str(BIN / "mlflow"), "ui", "--backend-store-uri", uri]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with _serve(command, f"http://127.0.0.1:{port}/", folder, folder / "mlflow.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: run `make browser-deps` first")
    from playwright.sync_api import sync_playwright

    SCREENS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def finished_mlflow_run(tmp_path_factory) -> tuple[str, str, list[str]]:
    """A small finished run in its own SQLite store: a parent with two logged child models."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from music_genre.datasets import MlflowModelRunsDataset
    from music_genre.models.plots import confusion_matrix_figure

    store = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("music_genre")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    records = []
    for c in (0.1, 10.0):
        model = LogisticRegression(C=c).fit(x, y)
        records.append(
            {
                "run_name": f"logreg C={c}",
                "params": {"C": c},
                "metrics": {"train_accuracy": model.score(x, y)},
                "history": {"loss": [1.0, 0.5, 0.25]},
                "figures": {
                    "confusion_matrix.png": confusion_matrix_figure(
                        y, model.predict(x), ["a", "b"], f"C={c}"
                    )
                },
                "model": model,
            }
        )
    with mlflow.start_run(run_name="browser-test parent") as parent:
        MlflowModelRunsDataset(filepath=str(store / "runs.csv"), pipeline="test").save(records)
    mlflow.set_tracking_uri("")
    return uri, parent.info.experiment_id, [r["run_name"] for r in records]


def test_mlflow_ui_lists_the_runs(browser, finished_mlflow_run, tmp_path):
    uri, experiment_id, run_names = finished_mlflow_run
    with _mlflow_ui(uri, tmp_path) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}#/experiments/{experiment_id}/runs", wait_until="load", timeout=90_000)
        page.get_by_text("browser-test parent").first.wait_for(timeout=90_000)
        # child runs sit under their parent: expand it, then each child must be listed
        page.locator("button[data-component-id*='runnamecellrenderer']").first.click()
        for name in run_names:
            page.get_by_text(name).first.wait_for(timeout=60_000)
        page.screenshot(path=str(SCREENS / "mlflow_runs.png"), full_page=True)
        page.close()


# what the registry holds after `registered_models`: model -> alias -> version
REGISTERED_ALIASES = {
    "genre_handcrafted": {"champion": "1", "challenger": "2"},
    "genre_cnn": {"champion": "1"},
    "genre_transfer": {"champion": "1"},
    "genre_fusion": {"champion": "1"},
    "genre_predictor": {"champion": "1"},
}


@pytest.fixture(scope="module")
def registered_models(tmp_path_factory) -> tuple[str, dict[str, dict[str, str]]]:
    """The project's five registered models in their own SQLite store, each registered by the
    project's code path (a runs dataset logs a small scikit-learn model, registration_request,
    MlflowRegisteredModelDataset, whose champion rule sets the alias); genre_handcrafted gets a
    second version, worse on the same test tracks: the challenger. Returns the store's URI and
    model -> alias -> version, as the registry reports them."""
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression

    from music_genre.datasets import MlflowModelRunsDataset
    from music_genre.datasets.mlflow_registry import MlflowRegisteredModelDataset
    from music_genre.tracking.registry import REGISTERED_NAMES, registration_request

    store = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment(
        "music_genre", artifact_location=(store / "artifacts").as_uri()
    )
    mlflow.set_experiment(experiment_id=experiment)
    ingestion = {"source": "fma", "fma_root": "data/01_raw/demo", "subset": "small"}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    test_ids = [f"{i:06d}" for i in range(8)]

    def register(pipeline: str, correct: int, attempt: int) -> None:
        runs = MlflowModelRunsDataset(
            filepath=str(store / f"{pipeline}_{attempt}_runs.csv"), pipeline=pipeline
        )
        runs.log_models = "selected"
        with mlflow.start_run(run_name=f"kedro run: {pipeline} ({attempt})"):
            runs.save(
                [
                    {
                        "run_name": f"{pipeline} logreg ({attempt})",
                        "params": {"C": 1.0 / (attempt + 1)},
                        "metrics": {"val_accuracy": correct / len(test_ids)},
                        "figures": {},
                        "model": LogisticRegression(C=1.0 / (attempt + 1)).fit(x, y),
                    }
                ]
            )
        predictions = pd.DataFrame(
            {
                "track_id": test_ids,
                "label": [0] * len(test_ids),
                "predicted": [0] * correct + [1] * (len(test_ids) - correct),
            }
        )
        request = registration_request(pipeline, runs.load(), predictions, ingestion)
        MlflowRegisteredModelDataset(str(store / f"{pipeline}_{attempt}.json")).save(request)

    try:
        for pipeline in REGISTERED_NAMES:
            register(pipeline, correct=6, attempt=0)
        register("handcrafted", correct=4, attempt=1)  # worse on the same tracks: challenger
        client = MlflowClient()
        aliases = {
            model.name: {alias: str(version) for alias, version in model.aliases.items()}
            for model in client.search_registered_models()
        }
    finally:
        mlflow.set_tracking_uri("")
    return uri, aliases


def test_mlflow_models_page_lists_the_registered_models_with_their_aliases(
    browser, registered_models, tmp_path
):
    from playwright.sync_api import expect

    uri, aliases = registered_models
    assert aliases == REGISTERED_ALIASES
    with _mlflow_ui(uri, tmp_path) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        # MLflow's announcement of its new registry UI may cover the table: closed whenever it
        # stands in the way of a click
        page.add_locator_handler(
            page.get_by_role("dialog").filter(has_text="new Model Registry UI"),
            lambda dialog: page.keyboard.press("Escape"),
        )
        try:
            page.goto(f"{url}#/models", wait_until="load", timeout=90_000)
            for name, versions in REGISTERED_ALIASES.items():
                link = page.get_by_role("link", name=name, exact=True)
                row = page.get_by_role("row").filter(has=link)
                expect(row).to_be_visible(timeout=90_000)
                # the row shows the alias tag of its latest version ("@ champion : Version 1",
                # a link to that version); a model's other aliases sit behind a "+1" that opens
                # a menu
                latest = max(versions, key=lambda alias: int(versions[alias]))
                tags = row.get_by_role("link").filter(has=page.get_by_role("status"))
                expect(tags).to_have_text([_alias_text(latest, versions[latest])])
                others = {a: v for a, v in versions.items() if a != latest}
                if others:
                    row.get_by_text(f"+{len(others)}", exact=True).click()
                    expect(page.get_by_role("menu").get_by_role("menuitem")).to_have_text(
                        [_alias_text(alias, version) for alias, version in others.items()]
                    )
                    page.keyboard.press("Escape")
            page.screenshot(path=str(SCREENS / "mlflow_models.png"), full_page=True)
        except BaseException:
            page.screenshot(path=str(tmp_path / "mlflow_models_failure.png"), full_page=True)
            raise
        finally:
            page.close()


def _alias_text(alias: str, version: str) -> re.Pattern:
    """An alias tag as the Models page renders it: ``@ champion : Version 1``."""
    return re.compile(rf"^@\s*{re.escape(alias)}\s*:\s*Version {version}$")


def test_kedro_viz_shows_the_pipelines(browser, tmp_path):
    port = free_port()
    command = [
        str(BIN / "kedro"),
        "viz",
        "run",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-browser",
        "--env",
        "demo",
    ]
    with _serve(command, f"http://127.0.0.1:{port}/", PROJECT_ROOT, tmp_path / "viz.log") as url:
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(url, wait_until="load", timeout=90_000)
        # node names of several pipelines must be listed in the rendered page
        for label in (
            "build_track_table",
            "compute_log_mel_spectrograms",
            "search_transfer_classifiers",
            "compare_with_study",
        ):
            page.get_by_text(label).first.wait_for(timeout=60_000)
        page.screenshot(path=str(SCREENS / "kedro_viz.png"), full_page=True)
        page.close()
    # the server is gone with its child processes: nothing answers on the port any more
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
