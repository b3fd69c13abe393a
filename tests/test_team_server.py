"""A team's MLflow tracking server end to end (``make test-team``): PostgreSQL backend store,
moto's S3 as the artefact store, ``mlflow server`` on them (music_genre.commands.team_server); the
serving pipeline and a handcrafted sweep log and register against it; runs, metrics,
artefacts (in the bucket), registered models with their aliases are checked, and the champion
genre predictor answers ``genre-predict --model-uri``. Every process is stopped afterwards,
also on failure."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
import soundfile as sf
from mlflow.tracking import MlflowClient

from music_genre.audio.spectrograms import STUDY_SETTINGS, spectrogram_settings
from music_genre.commands.team_server import _boto_credentials, postgres_bin, team_server
from music_genre.contracts import epoch_metric
from tests.helpers.processes import run_command
from tests.helpers.serving import INGESTION, package_and_register, tiny_test_predictions

pytestmark = [pytest.mark.slow, pytest.mark.team]

GENRES = ["Folk", "Pop", "Rock"]
ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> None:
    if postgres_bin() is None:
        pytest.skip(
            "PostgreSQL is not installed (no initdb): `make test-team` installs Debian's "
            "postgresql when run as root; otherwise `apt-get install -y postgresql`"
        )
    pytest.importorskip("psycopg2", reason="the team extra: pip install -e '.[team]'")
    pytest.importorskip("boto3", reason="the team extra: pip install -e '.[team]'")


def _tiny_cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((128, 1280, 1)),
            keras.layers.Rescaling(1 / 80.0),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(GENRES), activation="softmax"),
        ]
    )


def _handcrafted_sweep(workdir: Path, tracking_uri: str) -> None:
    """A two-configuration 'handcrafted' sweep (scikit-learn models) under a kedro-like parent
    run, logged with log_models=selected and its chosen model registered."""
    from sklearn.linear_model import LogisticRegression

    from music_genre.datasets import MlflowModelRunsDataset, MlflowRegisteredModelDataset
    from music_genre.tracking.registry import registration_request

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    records = [
        {
            "run_name": f"handcrafted mlp ({units})",
            "params": {"units": f"({units})", "parameters": units},
            "metrics": {"val_accuracy": acc, "val_loss": 1.0, "test_accuracy": 0.6},
            "history": {"loss": [1.0, 0.7, 0.5]},
            "model": LogisticRegression(C=units).fit(x, (x[:, 0] > 0).astype(int)),
        }
        for units, acc in ((8, 0.5), (16, 0.7))
    ]
    runs_dataset = MlflowModelRunsDataset(str(workdir / "hc_runs.csv"), pipeline="handcrafted")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.set_experiment("music_genre")
        with mlflow.start_run(run_name="kedro run: handcrafted (env team)"):
            runs_dataset.save(records)
        request = registration_request(
            "handcrafted", runs_dataset.load(), tiny_test_predictions(GENRES, 10, 6), INGESTION
        )
        MlflowRegisteredModelDataset(str(workdir / "hc_registered.json")).save(request)
    finally:
        mlflow.set_tracking_uri("")


def test_team_server_tracks_registers_and_serves_the_champion(tmp_path):
    _requirements()
    import boto3

    song = tmp_path / "song.wav"
    t = np.arange(31 * 22050) / 22050
    sf.write(song, 0.2 * np.sin(2 * np.pi * 220 * t), 22050)
    work = tmp_path / "work"
    work.mkdir()
    settings = spectrogram_settings(
        {**STUDY_SETTINGS, "pad_mode": "repeat", "storage_dtype": "float16"}
    )
    serving = {"model": "best", "min_seconds": 3.0, "max_windows": 10}
    with team_server(tmp_path / "server") as server:
        _handcrafted_sweep(work, server.tracking_uri)
        runs = package_and_register(
            _tiny_cnn(), GENRES, settings, work, server.tracking_uri, serving, parent_run=True
        )
        client = MlflowClient(tracking_uri=server.tracking_uri)
        experiment = client.get_experiment_by_name("music_genre")
        logged = client.search_runs([experiment.experiment_id])
        children = [r for r in logged if "mlflow.parentRunId" in r.data.tags]
        assert sorted(r.data.tags["pipeline"] for r in children) == [
            "handcrafted",
            "handcrafted",
            "serving",
        ]
        assert sorted(r.data.tags["selected"] for r in children) == ["false", "true", "true"]
        handcrafted = {r.data.tags["mlflow.runName"]: r for r in children}
        assert handcrafted["handcrafted mlp (16)"].data.metrics["val_accuracy"] == 0.7
        history = client.get_metric_history(
            handcrafted["handcrafted mlp (8)"].info.run_id, epoch_metric("loss")
        )
        assert [m.value for m in history] == [1.0, 0.7, 0.5]
        # the artefacts are in the bucket (uploaded through the server)
        s3 = boto3.client("s3", endpoint_url=server.s3_endpoint, **_boto_credentials())
        keys = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=server.bucket)
            for o in page.get("Contents", [])
        ]
        assert any(k.endswith("MLmodel") for k in keys), keys[:20]
        assert any(runs["run_id"][0] in k or "/models/" in k for k in keys), keys[:20]
        # registered models with their aliases and tags, in PostgreSQL
        predictor = client.get_model_version_by_alias("genre_predictor", "champion")
        assert predictor.tags["run_id"] == runs["run_id"][0]
        assert predictor.tags["test_accuracy_95ci"].startswith("0.700 [")
        assert predictor.tags["model_kind"] == "cnn"
        hc = client.get_model_version_by_alias("genre_handcrafted", "champion")
        assert hc.tags["run_name"] == "handcrafted mlp (16)"
        assert json.loads((work / "registered.json").read_text())["alias"] == "champion"
        # the champion serves from the server: genre-predict reads it through the URI alone
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            "MLFLOW_TRACKING_URI": server.tracking_uri,
        }
        result = run_command(
            [
                str(Path(sys.executable).parent / "genre-predict"),
                "--project",
                str(ROOT),
                "--model-uri",
                "--json",
                str(song),
            ],
            env=env,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        (item,) = json.loads(result.stdout)
        assert item["model"] == "models:/genre_predictor@champion"
        assert {t["genre"] for t in item["top"]} <= set(GENRES)
