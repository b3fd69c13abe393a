"""The notebooks in notebooks/ are stored without outputs and run without error on real results.

The fixture copies the project's conf and notebooks into a temporary project, generates a tiny
demo dataset (3 tracks per genre, 2-s clips), and runs the cheap pipelines on it with
``kedro run`` (ingestion, spectrogram, augmentation, handcrafted with a one-model sweep of two
epochs, reporting). Both notebooks then execute in a Jupyter kernel (nbclient) against those
results; the model pipelines that did not run (cnn, transfer) must be reported as "not run yet".
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from music_genre.demo import generate_demo_dataset
from tests.helpers.processes import run_command

pytestmark = pytest.mark.slow  # the notebooks run on a kedro run of the demo (minutes)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ENV = "nbtest"
PIPELINES = "ingestion,spectrogram,augmentation,handcrafted,reporting"
OVERRIDES = {
    "globals.yml": "ingestion:\n  fma_root: {demo}\n",
    "parameters/ingestion.yml": "ingestion:\n  min_duration_s: 1.0\n  workers: 1\n",
    "parameters/spectrogram.yml": "spectrogram:\n  duration_s: 2.0\n  workers: 1\n",
    "parameters/handcrafted.yml": (
        "handcrafted:\n  source: extract\n  extraction:\n    workers: 1\n"
        "  mlp:\n    hidden_units: [[8]]\n    max_epochs: 2\n    batch_size: 8\n"
    ),
    "parameters/serving.yml": "serving:\n  min_seconds: 1.0\n",
    "parameters/reporting.yml": "reporting:\n  dataset_kind: notebook test\n",
}


def _environment(env_name: str = ENV) -> dict[str, str]:
    env = dict(
        os.environ,
        KEDRO_ENV=env_name,
        KEDRO_DISABLE_TELEMETRY="1",
        DO_NOT_TRACK="1",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    )
    # MPLBACKEND: the kernel's own (inline) backend, so figures become outputs
    for name in (
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_TRACKING_URI",
        "MPLBACKEND",
    ):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project (conf, notebooks, the study's table) with results of a tiny run."""
    project = tmp_path_factory.mktemp("project")
    for name in ("pyproject.toml", ".telemetry"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "conf", project / "conf")
    shutil.copytree(ROOT / "notebooks", project / "notebooks")
    shutil.copytree(ROOT / "data" / "01_raw" / "study", project / "data" / "01_raw" / "study")
    (project / "src").mkdir()  # kedro wants it; the package is imported from PYTHONPATH
    demo = project / "data" / "01_raw" / "demo"
    generate_demo_dataset(demo, tracks_per_genre=3, duration_s=2.0, seed=0, workers=1)
    for name, text in OVERRIDES.items():
        path = project / "conf" / ENV / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(demo=demo))
    run = run_command(
        [sys.executable, "-m", "kedro", "run", "--env", ENV, "--pipelines", PIPELINES],
        cwd=project,
        env=_environment(),
        timeout=600,
    )
    (project / "kedro_run.log").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return project


ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the rich formatting of kedro.ipython's printing


def _outputs(notebook: nbformat.NotebookNode) -> str:
    text = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text.append(output.get("text", ""))
            text.append(str(output.get("data", {}).get("text/plain", "")))
            if "image/png" in output.get("data", {}):
                text.append("<image/png>")
            if "text/html" in output.get("data", {}) and "<audio" in output["data"]["text/html"]:
                text.append("<audio>")
    return ANSI.sub("", "\n".join(text))


def execute_notebook(project: Path, name: str, env_name: str = ENV) -> str:
    """Run ``notebooks/<name>`` of ``project`` in a Jupyter kernel against its Kedro
    environment ``env_name``; returns its outputs as text. The notebook file is not changed."""
    notebook = nbformat.read(project / "notebooks" / name, as_version=4)
    env = _environment(env_name)
    saved = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(project / "notebooks")}},
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return _outputs(notebook)


def _execute(project: Path, name: str) -> str:
    out = execute_notebook(project, name)
    (project / f"{name}.out.txt").write_text(out)  # for reading a failure
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: strip outputs (nbstripout)"
            assert cell.execution_count is None, f"{path.name}: strip execution counts"


def test_explore_notebook_shows_the_run(project):
    out = _execute(project, "01_explore_data.ipynb")
    assert "environment: nbtest" in out
    assert re.search(r"^2[0-9] tracks$", out, re.MULTILINE)  # 3 per genre, less the broken files
    for genre in ("Electronic", "Rock"):
        assert genre in out
    # the demo's broken files, with their reasons, in the bad-tracks report
    assert "file missing (listed in tracks.csv, not on disk)" in out and "unreadable" in out
    assert re.search(r"2[0-9] spectrograms; 1[0-9] augmented copies", out)
    assert out.count("<image/png>") >= 2  # spectrograms + feature distributions
    assert "<audio>" in out
    assert "not run yet" not in out  # every pipeline this notebook reads has run


def test_compare_notebook_shows_the_run(project):
    out = _execute(project, "02_compare_models.ipynb")
    assert "handcrafted_results" in out
    assert "cnn_results: not run yet: kedro run --pipelines=cnn" in out
    assert "transfer_results: not run yet: kedro run --pipelines=transfer" in out
    assert re.search(r"^0 +\(8\) +4224 ", out, re.MULTILINE)  # the sweep's one configuration
    assert "test accuracy of the models this run trained" in out
    assert re.search(r"^handcrafted mlp +\(8\) ", out, re.MULTILINE)  # run next to the study
    assert "<image/png>" in out  # the handcrafted confusion matrix
    assert "handcrafted mlp (8)" in out and "1 MLflow runs" in out
    assert "model: handcrafted | true genre:" in out
