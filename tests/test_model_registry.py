"""Child-run tags, ``log_models``, and the Model Registry with its champion rule (issue #23),
on tiny scikit-learn models in a temporary SQLite store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from music_genre.datasets.mlflow_registry import MlflowRegisteredModelDataset
from music_genre.datasets.mlflow_runs import MlflowModelRunsDataset, selected_record
from music_genre.tracking import absolute_uri, resolve_tracking_uri, tracking_uri
from music_genre.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    champion_decision,
    data_fingerprint,
    data_source,
    registration_request,
)

INGESTION = {"source": "fma", "fma_root": "data/01_raw/demo", "subset": "small"}


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite store (artefacts under tmp_path) and a parent run, as kedro-mlflow opens."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # ./mlruns (the artefacts) goes there
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("test")
    yield uri
    mlflow.set_tracking_uri("")


def _model(seed: int) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 3))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))


def _records(accuracies: list[float]) -> list[dict]:
    return [
        {
            "run_name": f"handcrafted mlp ({i})",
            "params": {"units": f"({i})", "parameters": 10 + i},
            "metrics": {"val_accuracy": acc, "val_loss": 1.0, "test_accuracy": 0.5},
            "figures": {},
            "model": _model(i),
            "tags": {"units": f"({i})"},
        }
        for i, acc in enumerate(accuracies)
    ]


def _predictions(ids, correct: int) -> pd.DataFrame:
    labels = [0] * len(ids)
    return pd.DataFrame(
        {"track_id": ids, "label": labels, "predicted": [0] * correct + [1] * (len(ids) - correct)}
    )


def _log(tmp_path: Path, records: list[dict], log_models: str = "selected") -> pd.DataFrame:
    dataset = MlflowModelRunsDataset(filepath=str(tmp_path / "runs.csv"), pipeline="handcrafted")
    dataset.log_models = log_models
    with mlflow.start_run(run_name="kedro run: handcrafted (env test)"):
        dataset.save(records)
    return dataset.load()


def _artifact_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def test_selection_rule_picks_the_record_without_a_flag():
    """The dataset applies music_genre.models.selection's rule when the node set no flag: highest
    val_accuracy; a tie goes to the lower val_loss, then fewer parameters (cnn: trainable_params);
    comparison records never win; an explicit flag wins over the rule."""
    records = _records([0.4, 0.7, 0.7])
    records[2]["metrics"]["val_loss"] = 0.5
    assert selected_record(records, "handcrafted") == 2
    records[2]["tags"]["comparison"] = "true"
    assert selected_record(records, "handcrafted") == 1
    cnn = [
        {"params": {"trainable_params": p}, "metrics": {"val_accuracy": 0.6, "val_loss": 1.0}}
        for p in (300, 100)
    ]
    assert selected_record(cnn, "cnn") == 1
    flagged = _records([0.9, 0.1])
    flagged[1]["selected"] = True
    flagged[0]["selected"] = False
    assert selected_record(flagged, "handcrafted") == 1
    assert selected_record(_records([0.3]), "serving") == 0


def test_child_runs_tags_and_log_models_selected(store, tmp_path):
    """Every child run: tag pipeline, selected=true only on the chosen one, MLflow's own
    mlflow.parentRunId (no kedro_parent_run_id); with log_models=selected only the chosen run
    has a model, which loads and predicts; params/metrics/history of the others are kept."""
    records = _records([0.4, 0.8, 0.6])
    records[0]["history"] = {"loss": [1.0, 0.5]}
    runs = _log(tmp_path, records)
    assert runs["selected"].tolist() == [False, True, False]
    assert runs["model_uri"].notna().tolist() == [False, True, False]
    client = MlflowClient()
    parent = client.search_runs(
        [mlflow.get_experiment_by_name("test").experiment_id],
        "tags.mlflow.runName = 'kedro run: handcrafted (env test)'",
    )[0]
    for row in runs.itertuples():
        run = client.get_run(row.run_id)
        assert run.data.tags["pipeline"] == "handcrafted"
        assert run.data.tags["selected"] == str(row.selected).lower()
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert "kedro_parent_run_id" not in run.data.tags
        assert run.data.metrics["val_accuracy"] == records[row.Index]["metrics"]["val_accuracy"]
    assert [m.value for m in client.get_metric_history(runs["run_id"][0], "epoch_train_loss")] == [
        1.0,
        0.5,
    ]
    model = mlflow.sklearn.load_model(runs["model_uri"][1])
    assert model.predict(np.zeros((1, 3))).shape == (1,)


def test_log_models_all_and_none_and_size(store, tmp_path):
    """all: every run logs its model; none: no run does; selected stores about 1/n of all's
    model bytes (here 3 configurations)."""
    sizes = {}
    for mode in ("all", "selected", "none"):
        before = _artifact_bytes(tmp_path / "mlruns") if (tmp_path / "mlruns").exists() else 0
        runs = _log(tmp_path, _records([0.4, 0.8, 0.6]), mode)
        sizes[mode] = _artifact_bytes(tmp_path / "mlruns") - before
        expected = {"all": 3, "selected": 1, "none": 0}[mode]
        assert runs["model_uri"].notna().sum() == expected, mode
    assert sizes["none"] == 0
    assert sizes["selected"] <= sizes["all"] / 2.5


def test_log_models_is_validated():
    from music_genre.config import HandcraftedParams

    with pytest.raises(Exception, match="log_models"):
        MlflowModelRunsDataset(filepath="x.csv", pipeline="handcrafted", log_models="best")
    assert HandcraftedParams.model_fields["log_models"].default == "selected"
    with pytest.raises(ValueError):
        HandcraftedParams.model_validate(
            {"source": "fma_csv", "extraction": {}, "mlp": {}, "log_models": "some"}
        )


def test_fingerprint_depends_on_tracks_and_source():
    source = data_source(INGESTION)
    assert source == "fma:data/01_raw/demo small"
    assert data_fingerprint([3, 1, 2], source) == data_fingerprint([1, 2, 3], source)
    assert data_fingerprint([1, 2, 3], source) != data_fingerprint([1, 2, 4], source)
    other = data_source({**INGESTION, "fma_root": "data/01_raw"})
    assert data_fingerprint([1, 2, 3], source) != data_fingerprint([1, 2, 3], other)


def test_champion_rule():
    same = {"test_data": "abc", "test_accuracy": "0.5"}
    assert champion_decision(same, None)[0] == CHAMPION
    assert champion_decision({**same, "test_accuracy": "0.5"}, same, "1")[0] == CHAMPION
    assert champion_decision({**same, "test_accuracy": "0.6"}, same, "1")[0] == CHAMPION
    alias, reason = champion_decision({**same, "test_accuracy": "0.4"}, same, "1")
    assert alias == CHALLENGER and "worse than champion v1" in reason
    alias, reason = champion_decision({"test_data": "def", "test_accuracy": "0.9"}, same, "1")
    assert alias == CHALLENGER and "other data" in reason and "abc" in reason


def test_registry_versions_aliases_and_champion_loads(store, tmp_path):
    """Three kedro runs of one pipeline: v1 champion; v2 worse on the same tracks ->
    challenger with the reason; v3 on other test tracks -> challenger (not comparable); the
    same run registered again reuses its version; models:/genre_handcrafted@champion loads
    (also through kedro-mlflow's MlflowModelRegistryDataset)."""
    from kedro_mlflow.io.models import MlflowModelRegistryDataset

    ids = list(range(20))
    outcomes = []
    for correct, test_ids in ((12, ids), (10, ids), (19, list(range(5, 25)))):
        runs = _log(tmp_path, _records([0.4, 0.8]))
        request = registration_request(
            "handcrafted", runs, _predictions(test_ids, correct), INGESTION
        )
        dataset = MlflowRegisteredModelDataset(filepath=str(tmp_path / "registered.json"))
        dataset.save(request)
        outcomes.append(dataset.load())
    assert [o["version"] for o in outcomes] == ["1", "2", "3"]
    assert [o["alias"] for o in outcomes] == [CHAMPION, CHALLENGER, CHALLENGER]
    assert "worse than champion v1" in outcomes[1]["reason"]
    assert "other data" in outcomes[2]["reason"]
    client = MlflowClient()
    v1 = client.get_model_version_by_alias("genre_handcrafted", CHAMPION)
    assert str(v1.version) == "1" and v1.run_id == outcomes[0]["tags"]["run_id"]
    assert v1.tags["test_accuracy"] == "0.600000"
    assert v1.tags["test_accuracy_95ci"].startswith("0.600 [")
    assert v1.tags["test_data"] == data_fingerprint(ids, data_source(INGESTION))
    assert v1.tags["test_tracks"] == "20"
    assert str(client.get_model_version_by_alias("genre_handcrafted", CHALLENGER).version) == "3"
    assert "worse" in client.get_model_version("genre_handcrafted", "2").tags["alias_reason"]
    # a better model on the champion's tracks takes the alias
    runs = _log(tmp_path, _records([0.4, 0.8]))
    request = registration_request("handcrafted", runs, _predictions(ids, 15), INGESTION)
    dataset.save(request)
    assert dataset.load()["alias"] == CHAMPION and dataset.load()["version"] == "4"
    dataset.save(request)  # the same run again: no new version
    assert dataset.load()["version"] == "4" and dataset.load()["reason"] == "already the champion"
    model = mlflow.pyfunc.load_model("models:/genre_handcrafted@champion")
    assert model.predict(np.zeros((2, 3))).shape == (2,)
    loaded = MlflowModelRegistryDataset(model_name="genre_handcrafted", alias=CHAMPION).load()
    assert loaded.predict(np.zeros((1, 3))).shape == (1,)
    assert json.loads((tmp_path / "registered.json").read_text())["name"] == "genre_handcrafted"


def test_nothing_registered_without_a_model(store, tmp_path):
    runs = _log(tmp_path, _records([0.4, 0.8]), "none")
    request = registration_request("handcrafted", runs, _predictions([1, 2], 1), INGESTION)
    assert "logged no model" in request["skipped"]
    MlflowRegisteredModelDataset(filepath=str(tmp_path / "r.json")).save(request)
    assert "skipped" in json.loads((tmp_path / "r.json").read_text())
    assert MlflowClient().search_registered_models() == []


def test_tracking_uri_has_one_definition(monkeypatch, tmp_path):
    """conf's mlflow.yml gives the store; MLFLOW_TRACKING_URI overrides it; relative SQLite
    paths are anchored at the project."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(root) == f"sqlite:///{(root / 'mlflow.db').as_posix()}"
    assert tracking_uri(root, "team").startswith("http://127.0.0.1:")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert resolve_tracking_uri("sqlite:///x.db") == "http://mlflow.example:5000"
    assert tracking_uri(root) == "http://mlflow.example:5000"
    assert tracking_uri(root, "team") == "http://mlflow.example:5000"
    assert absolute_uri("sqlite:///a.db", tmp_path) == f"sqlite:///{tmp_path / 'a.db'}"
    assert absolute_uri("sqlite:////abs/a.db", tmp_path) == "sqlite:////abs/a.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"


def test_genre_serve_defaults_to_the_champion_and_takes_any_uri(store, tmp_path, capsys):
    """genre-serve: the registry's champion by default, --model-uri / --run-id as given; a
    store without a champion gets a message naming the command that makes one."""
    import argparse

    from music_genre.commands import serve as serve_cli

    def args(**given) -> argparse.Namespace:
        return argparse.Namespace(**{"model_uri": None, "run_id": None, "latest": False, **given})

    assert serve_cli.model_uri_of(args(), store) == "models:/genre_predictor@champion"
    assert serve_cli.model_uri_of(args(run_id="abc"), store) == "runs:/abc/model"
    assert serve_cli.model_uri_of(args(model_uri="models:/x/2"), store) == "models:/x/2"
    assert serve_cli.missing_model("runs:/abc/model", store) is None
    with mlflow.start_run():
        pass  # the store exists
    assert serve_cli.main(["--tracking-uri", store]) == 1
    assert "no models:/genre_predictor@champion in" in capsys.readouterr().err
