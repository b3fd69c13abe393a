"""What `make run` produced, checked after it ran in this checkout (`make check-run`; CI runs
it right after `make run` on the fresh clone): every pipeline's results table agrees with its
own per-track predictions, `summary.md` reports the four model pipelines and fusion with those
numbers, the MLflow store holds the run and one child run per trained configuration, the
served model answers over HTTP, and both notebooks show results, not "not run yet".

No thresholds on the demo's accuracies: they say that the code works, and their spread over
seeds has not been measured (docs: the demo dataset). Every check reads what the run wrote;
none of them trains anything.
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from music_genre.serving.package import PACKAGE_FOLDER
from tests.helpers.processes import make_serve, run_command

pytestmark = pytest.mark.after_run

ROOT = Path(__file__).resolve().parents[2]
REPORTING = ROOT / "data" / "08_reporting"
MODEL_OUTPUT = ROOT / "data" / "07_model_output"
ENV = "demo"
PIPELINES = ("handcrafted", "cnn", "transfer", "fusion")
# (selection column, reported test column) per results table: the rule the summary applies
RULES = {
    "handcrafted": ("val_accuracy", "test_accuracy"),
    "cnn": ("val_accuracy", "test_accuracy"),
    "transfer": ("cv_accuracy", "test_accuracy"),
    "fusion": ("val_accuracy", "test_accuracy"),
}


@pytest.fixture(scope="module")
def params() -> dict:
    from kedro.config import OmegaConfigLoader

    from music_genre.settings import CONFIG_LOADER_ARGS

    args = {**CONFIG_LOADER_ARGS, "default_run_env": ENV}
    return OmegaConfigLoader(str(ROOT / "conf"), **args)["parameters"]


@pytest.fixture(scope="module")
def results() -> dict[str, pd.DataFrame]:
    missing = [p for p in PIPELINES if not (REPORTING / f"{p}_results.csv").is_file()]
    assert not missing, f"no results of {missing}: run `make run` first"
    return {p: pd.read_csv(REPORTING / f"{p}_results.csv") for p in PIPELINES}


def _best(table: pd.DataFrame, pipeline: str) -> pd.Series:
    select_by, _ = RULES[pipeline]
    return table.loc[table[select_by].idxmax()]


def test_every_results_table_holds_every_configuration(results, params):
    hidden = params["handcrafted"]["mlp"]["hidden_units"]
    assert len(results["handcrafted"]) == len(hidden)
    assert len(results["cnn"]) == 4  # plain and tuned, each with and without augmentation
    experiments = params["transfer"]["experiments"]
    classifiers = params["transfer"]["classifiers"]
    expected_transfer = sum(len(e["pca_variances"]) for e in experiments) * len(classifiers)
    assert len(results["transfer"]) == expected_transfer
    assert len(results["fusion"]) >= 1
    for pipeline, table in results.items():
        for column in RULES[pipeline]:
            values = table[column].to_numpy(float)
            assert np.isfinite(values).all(), f"{pipeline}: {column} has gaps"
            assert ((values >= 0) & (values <= 1)).all(), f"{pipeline}: {column} outside 0..1"


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_best_test_accuracy_is_what_its_test_predictions_score(results, pipeline):
    """The reported number is recomputed from the per-track predictions the pipeline wrote."""
    predictions = pd.read_parquet(MODEL_OUTPUT / f"{pipeline}_test_predictions.parquet")
    assert len(predictions) > 0
    accuracy = float((predictions["predicted"] == predictions["label"]).mean())
    _, report = RULES[pipeline]
    # transfer's table holds accuracies rounded to 4 decimals (tabulate_transfer_results): half a
    # unit of the 4th decimal; the others divide the same two counts (float64 rounding only)
    tolerance = 5e-5 + 1e-12 if pipeline == "transfer" else 1e-12
    assert _best(results[pipeline], pipeline)[report] == pytest.approx(accuracy, abs=tolerance)


def test_best_models_table_follows_the_selection_rule(results):
    best = pd.read_csv(REPORTING / "best_models.csv").set_index("pipeline")
    assert sorted(best.index) == sorted(PIPELINES)
    for pipeline in PIPELINES:
        chosen = _best(results[pipeline], pipeline)
        select_by, report = RULES[pipeline]
        assert best.loc[pipeline, "selection_value"] == pytest.approx(chosen[select_by])
        assert best.loc[pipeline, "test_accuracy"] == pytest.approx(chosen[report])


def test_summary_reports_every_pipeline_with_its_numbers(results):
    summary = (REPORTING / "summary.md").read_text()
    assert "missing:" not in summary, "a section says a pipeline produced nothing"
    for heading in (
        "## Handcrafted features",
        "## CNN on log-mel spectrograms",
        "## Transfer learning",
        "## Fusion of the best",
        "## Uncertainty",
    ):
        assert heading in summary, heading
    best = pd.read_csv(REPORTING / "best_models.csv").set_index("pipeline")
    for pipeline in PIPELINES:
        row = next(
            (line for line in summary.splitlines() if line.startswith(f"| {pipeline} |")), None
        )
        assert row is not None, f"no best-model row for {pipeline}"
        assert f"{best.loc[pipeline, 'test_accuracy']:.4f}" in row, row


def test_mlflow_holds_the_run_and_a_child_run_per_configuration(results):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{ROOT / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("music_genre")
    assert experiment is not None, "no MLflow experiment music_genre in mlflow.db"
    runs = client.search_runs([experiment.experiment_id], max_results=10_000)
    kedro_runs = {
        r.info.run_id
        for r in runs
        if "mlflow.parentRunId" not in r.data.tags and r.info.status == "FINISHED"
    }
    assert kedro_runs, "no finished kedro run in mlflow.db"
    # live curves: no child run (configuration or Hyperband trial) is left running
    running = [
        r.info.run_name
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") in kedro_runs and r.info.status == "RUNNING"
    ]
    assert not running, running
    # every run below the latest kedro run (configurations, Hyperband trials, the served
    # predictor) carries a held-out accuracy and a test accuracy (docs/metrics.md)
    latest = max((r for r in runs if r.info.run_id in kedro_runs), key=lambda r: r.info.start_time)
    below, frontier = [], {latest.info.run_id}
    while frontier:
        found = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in frontier]
        below += found
        frontier = {r.info.run_id for r in found}
    assert below, "the latest kedro run has no child runs"
    lacking = [
        r.info.run_name
        for r in below
        if not ({"val_accuracy", "cv_accuracy"} & set(r.data.metrics))
        or "test_accuracy" not in r.data.metrics
    ]
    assert not lacking, lacking
    runs_tables = {
        "handcrafted": "handcrafted_mlflow_runs.csv",
        "cnn": "cnn_mlflow_runs.csv",
        "transfer": "transfer_mlflow_runs.csv",
        "fusion": "fusion_mlflow_runs.csv",
    }
    for pipeline, name in runs_tables.items():
        listed = pd.read_csv(REPORTING / name)
        assert len(listed) >= 1, f"{name}: no runs"
        run_ids = listed[[c for c in listed.columns if c.endswith("run_id")][0]]
        for run_id in run_ids:
            run = client.get_run(run_id)  # raises if the store does not hold it
            assert run.info.status == "FINISHED", (pipeline, run_id, run.info.status)
            metrics = run.data.metrics
            # the one vocabulary (docs/metrics.md): a held-out accuracy that chose, and test's
            assert {"val_accuracy", "cv_accuracy"} & set(metrics), (pipeline, run_id, metrics)
            assert {"test_accuracy", "test_ci_low", "test_ci_high", "test_tracks"} <= set(
                metrics
            ), (pipeline, run_id, metrics)
            # a child of a kedro run that finished (kedro-mlflow nests every model run)
            assert run.data.tags.get("mlflow.parentRunId") in kedro_runs, (pipeline, run_id)
    assert len(pd.read_csv(REPORTING / "transfer_mlflow_runs.csv")) == len(results["transfer"])


@pytest.mark.parametrize("pipeline", ["handcrafted", "cnn", "transfer", "fusion"])
def test_only_the_selected_configuration_logs_its_model_and_it_loads(pipeline):
    """Every child run carries its pipeline and selected tags; with log_models=selected (the
    default) exactly one run per pipeline is selected and only it may hold a model, which
    loads; the selected model is registered (or the reason why not is written)."""
    import json

    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{ROOT / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    listed = pd.read_csv(REPORTING / f"{pipeline}_mlflow_runs.csv")
    assert listed["selected"].sum() == 1, listed[["run_name", "selected"]]
    for row in listed.itertuples():
        tags = client.get_run(row.run_id).data.tags
        assert tags["pipeline"] == pipeline and tags["selected"] == str(row.selected).lower()
        assert "kedro_parent_run_id" not in tags
    assert listed.loc[~listed["selected"], "model_uri"].isna().all()
    chosen = listed[listed["selected"]].iloc[0]
    registered = json.loads((REPORTING / "registry" / f"{pipeline}.json").read_text())
    # every pipeline's chosen configuration logs a model (fusion: either method, a pyfunc)
    assert pd.notna(chosen["model_uri"]), chosen
    import music_genre.models.cnn  # noqa: F401 - registers the CNN's custom Keras layers

    mlflow.set_tracking_uri(uri)
    try:
        assert mlflow.pyfunc.load_model(chosen["model_uri"]) is not None
    finally:
        mlflow.set_tracking_uri("")
    assert registered["tags"]["run_id"] == chosen["run_id"]
    version = client.get_model_version(registered["name"], registered["version"])
    assert version.tags["test_data"] and version.tags["test_accuracy_95ci"]


def test_the_served_predictor_is_the_registered_champion():
    import json

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{ROOT / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("genre_predictor", "champion")
    registered = json.loads((REPORTING / "registry" / "genre_predictor.json").read_text())
    if registered["alias"] == "champion":  # this run's predictor won (or was the first)
        assert str(champion.version) == registered["version"]


def _post(port: int, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, json.loads(response.read())


def test_the_served_model_answers_over_http(tmp_path):
    tracks = pd.read_parquet(ROOT / "data" / "03_primary" / "tracks.parquet")
    test_track = tracks[tracks["split"] == "test"].iloc[0]
    path = Path(test_track["path"])
    path = path if path.is_absolute() else ROOT / path
    genres = sorted(tracks["genre"].unique())
    with make_serve(ROOT, tmp_path / "serve.log") as port:
        audio = base64.b64encode(path.read_bytes()).decode()
        status, body = _post(
            port, {"dataframe_split": {"columns": ["audio", "name"], "data": [[audio, path.name]]}}
        )
    assert status == 200
    row = body["predictions"][0]
    assert row["error"] == "" and row["genre"] in genres, row
    assert sum(row[g] for g in genres) == pytest.approx(1.0, abs=1e-5)
    # genre-predict gives that file the same answer (issue #24: to 1e-5), from the serving
    # pipeline's package (no Kedro) and from the catalog's trained models
    registered = json.loads((REPORTING / "registry" / "genre_predictor.json").read_text())
    if registered["alias"] != "champion":  # the server serves an earlier run's champion
        return
    kind = json.loads((ROOT / PACKAGE_FOLDER / "package.json").read_text())["model_kind"]
    for args in ([], ["--env", ENV, "--model", kind]):
        done = run_command(
            [
                sys.executable,
                "-m",
                "music_genre.commands.predict",
                "--json",
                "--top",
                "8",
                "--project",
                str(ROOT),
                *args,
                str(path),
            ],
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)[0]
        assert answer["top"][0]["genre"] == row["genre"], (args, answer)
        assert set(answer["probabilities"]) == set(genres)
        for genre, probability in answer["probabilities"].items():
            assert probability == pytest.approx(row[genre], abs=1e-5), (args, genre)


@pytest.mark.parametrize("name", ["01_explore_data.ipynb", "02_compare_models.ipynb"])
def test_notebooks_show_the_complete_run(name):
    from tests.test_notebooks import execute_notebook

    out = execute_notebook(ROOT, name, env_name=ENV)
    assert "not run yet" not in out, "a notebook section found no results of make run"
    if name.startswith("02"):  # the model tables print their rows, the four CNN variants too
        for shown in ("cnn_results", "tuned_cnn_augmented", "transfer_results", "musicnn"):
            assert shown in out, shown
