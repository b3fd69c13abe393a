"""Prediction: the same preprocessing as training, per-file errors, the CLI and the served model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from music_genre import predict_cli
from music_genre.datasets import SpectrogramStoreDataset
from music_genre.pipelines.spectrogram.nodes import compute_log_mel_spectrograms
from music_genre.predict import (
    CnnPredictor,
    GenrePredictorModel,
    predict_file,
    window_offsets,
)
from music_genre.spectrograms import STUDY_SETTINGS, spectrogram_settings

GENRES = ["Folk", "Pop", "Rock"]
SETTINGS = spectrogram_settings(
    {**STUDY_SETTINGS, "pad_mode": "repeat", "storage_dtype": "float16"}
)


def _write(path: Path, seconds: float, rate: int = 44100, channels: int = 2) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.3 * t))
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predict")
    (root / "empty.mp3").write_bytes(b"")
    (root / "notes.mp3").write_text("not audio at all")
    (root / "folder").mkdir()
    return {
        "clip": _write(root / "clip.wav", 31.0),
        "long": _write(root / "long.flac", 95.0, rate=22050, channels=1),
        "short": _write(root / "short.wav", 1.0),
        "five": _write(root / "five.wav", 5.0),
        "empty": root / "empty.mp3",
        "not_audio": root / "notes.mp3",
        "missing": root / "missing.wav",
        "folder": root / "folder",
    }


@pytest.fixture(scope="module")
def predictor() -> CnnPredictor:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((128, 1280, 1)),
            keras.layers.Rescaling(1 / 80.0),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(GENRES), activation="softmax"),
        ]
    )
    return CnnPredictor(model=model, class_names=GENRES, spectrogram_settings=SETTINGS)


def test_window_offsets():
    assert window_offsets(30.0, 29.7, 10) == [0.0]
    assert window_offsets(59.0, 29.7, 10) == [0.0]
    assert window_offsets(95.0, 29.7, 10) == pytest.approx([0.0, 29.7, 59.4])
    assert len(window_offsets(3600.0, 29.7, 10)) == 10


def test_prediction_preprocessing_equals_the_training_pipeline(files, predictor, tmp_path):
    """The spectrogram the CNN trained on (spectrogram pipeline -> store) equals what the
    predictor computes for the same file, within the store's float16 precision."""
    tracks = pd.DataFrame(
        {"track_id": ["t1"], "path": [str(files["clip"])], "genre": ["Pop"], "split": ["training"]}
    )
    store = SpectrogramStoreDataset(path=str(tmp_path / "store"))
    params = {**SETTINGS, "workers": 1, "write_batch_size": 1}
    for batch in compute_log_mel_spectrograms(tracks, {}, params):
        store.save(batch)
    trained_on = store.load()["t1"]()
    predicted_on = predictor.spectrograms(str(files["clip"]), [0.0])[0]
    assert predicted_on.shape == trained_on.shape == (128, 1280)
    np.testing.assert_allclose(predicted_on, trained_on, rtol=2.0**-10, atol=0.05)


def test_good_files_get_probabilities(files, predictor):
    for name, windows in (("clip", 1), ("long", 3), ("five", 1)):
        result = predict_file(predictor, files[name])
        assert result.error is None
        assert result.windows == windows
        assert set(result.probabilities) == set(GENRES)
        assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert len(result.top(3)) == 3


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing", "file not found"),
        ("empty", "empty file"),
        ("not_audio", "cannot decode"),
        ("short", "too short"),
        ("folder", "is a directory"),
    ],
)
def test_bad_inputs_give_a_clear_per_file_error(files, predictor, name, message):
    result = predict_file(predictor, files[name])
    assert message in result.error and str(files[name]) in result.error
    assert result.probabilities == {}


@pytest.fixture
def cli_with(monkeypatch, predictor):
    class Catalog:
        def load(self, name):
            raise AssertionError(f"--model cnn must not read {name}")

    class Context:
        catalog = Catalog()
        params: dict = {}

    monkeypatch.setattr(predict_cli, "_kedro_context", lambda project, env: Context())
    monkeypatch.setattr(predict_cli, "build_predictor", lambda kind, load, params: predictor)
    return predict_cli


def test_cli_prints_json_and_fails_only_when_every_file_fails(cli_with, files, capsys):
    code = cli_with.main(["--model", "cnn", "--json", str(files["clip"]), str(files["empty"])])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [item["path"] for item in out] == [str(files["clip"]), str(files["empty"])]
    assert [t["genre"] for t in out[0]["top"]] and len(out[0]["top"]) == 3
    assert "empty file" in out[1]["error"]
    assert cli_with.main(["--model", "cnn", str(files["missing"]), str(files["folder"])]) == 1
    text = capsys.readouterr()
    assert "ERROR" in text.err and "file not found" in text.err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_served_model_answers_a_request_for_a_local_file(files, predictor, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as run:
            mlflow.pyfunc.log_model(
                name="model",
                python_model=GenrePredictorModel(predictor),
                pip_requirements=["mlflow"],
            )
    finally:
        mlflow.set_tracking_uri("")
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    server = subprocess.Popen(
        [
            str(bin_dir / "mlflow"),
            "models",
            "serve",
            "-m",
            f"runs:/{run.info.run_id}/model",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        # the scoring server runs `uvicorn` from the environment's bin folder
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": uri,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        stdout=open(tmp_path / "serve.log", "w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "serve.log").read_text()[-3000:]) from None
                time.sleep(1)
        body = json.dumps(
            {
                "dataframe_split": {
                    "columns": ["path"],
                    "data": [[str(files["clip"])], [str(files["missing"])]],
                }
            }
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            rows = json.loads(response.read())["predictions"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert rows[0]["genre"] in GENRES and rows[0]["error"] == ""
    assert sum(rows[0][g] for g in GENRES) == pytest.approx(1.0, abs=1e-5)
    assert "file not found" in rows[1]["error"]


def test_best_model_kind_uses_held_out_accuracy_only():
    from music_genre.predict import PredictionError, best_model_kind

    results = {
        "handcrafted": pd.DataFrame({"val_acc": [0.6], "test_acc": [0.9]}),
        "cnn": None,
        "transfer": pd.DataFrame({"cv_accuracy": [0.7], "test_accuracy": [0.1]}),
    }
    assert best_model_kind(results) == "transfer"
    with pytest.raises(PredictionError, match="no trained model"):
        best_model_kind({"handcrafted": None, "cnn": None, "transfer": None})
