"""Prediction: the same preprocessing as training, per-file errors, the CLI and the served model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
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
    predict_file,
    window_offsets,
)
from music_genre.served_model import GenrePredictorModel
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


@pytest.mark.numeric
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


@pytest.mark.numeric
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
    monkeypatch.setattr(
        predict_cli, "build_predictor", lambda kind, load, params, exported: predictor
    )
    return predict_cli


def test_cli_prints_json_and_fails_only_when_every_file_fails(cli_with, files, capsys):
    code = cli_with.main(["--model", "cnn", "--json", str(files["clip"]), str(files["empty"])])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [item["path"] for item in out] == [str(files["clip"]), str(files["empty"])]
    assert [t["genre"] for t in out[0]["top"]] and len(out[0]["top"]) == 3
    # timing (ms): from the file, its parts, the warm network, and the command's start-up
    assert out[0]["runtime"] == "keras"  # the fixture's model; exported: tests/test_inference.py
    assert set(out[0]["timing"]) == {
        "inputs_ms",
        "model_ms",
        "end_to_end_ms",
        "model_repeat_ms",
        "startup_ms",
    }
    assert "empty file" in out[1]["error"]
    assert cli_with.main(["--model", "cnn", str(files["missing"]), str(files["folder"])]) == 1
    text = capsys.readouterr()
    assert "ERROR" in text.err and "file not found" in text.err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(port: int, payload: dict) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies waiting to be reaped do not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            return True
    return False


def _stop_process_group(leader: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM every process of the leader's group (make, mlflow, uvicorn and its workers), wait
    until all have exited (uvicorn drains its connections after make is already gone), SIGKILL
    what is left after ``grace_s``."""
    pgid = leader.pid
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
        if _group_alive(pgid):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            leader.poll()  # reap the leader so that it does not linger as a zombie
            if not _group_alive(pgid):
                return
            time.sleep(0.2)
    raise AssertionError(f"processes of group {pgid} survived SIGKILL")


def test_make_serve_serves_the_logged_predictor(files, predictor, tmp_path):
    """`make serve` end to end: the run id comes from the MLflow store (a run name holding a
    comma broke the old shell pipeline), strict JSON out, a short 400 for a wrong request."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(
            run_name="genre predictor: transfer (musicnn pooled, msd weights)",
            tags={"served_model": "genre_predictor"},
        ) as run:
            mlflow.pyfunc.log_model(
                name="model",
                python_model=GenrePredictorModel(predictor),
                pip_requirements=["mlflow"],
            )
    finally:
        mlflow.set_tracking_uri("")
    port = _free_port()
    root = Path(__file__).resolve().parents[1]
    server = subprocess.Popen(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(root),
            "serve",
            f"SERVE_PORT={port}",
            f"MLFLOW_URI={uri}",
        ],
        stdout=open(tmp_path / "serve.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # make -> genre-serve -> mlflow -> uvicorn: one group to stop
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "serve.log").read_text()[-3000:]) from None
                time.sleep(1)
        status, body = _post(
            port,
            {
                "dataframe_split": {
                    "columns": ["path"],
                    "data": [[str(files["clip"])], [str(files["missing"])]],
                }
            },
        )
        bad_status, bad_body = _post(
            port, {"dataframe_split": {"columns": ["file"], "data": [[str(files["clip"])]]}}
        )
    finally:
        _stop_process_group(server)
    assert run.info.run_id in (tmp_path / "serve.log").read_text()
    assert status == 200
    # strict JSON: Python's parser must not meet NaN or Infinity
    rows = json.loads(body, parse_constant=lambda c: pytest.fail(f"{c} in the response"))
    rows = rows["predictions"]
    assert rows[0]["genre"] in GENRES and rows[0]["error"] == ""
    assert sum(rows[0][g] for g in GENRES) == pytest.approx(1.0, abs=1e-5)
    assert "file not found" in rows[1]["error"]
    assert all(rows[1][g] is None for g in GENRES) and rows[1]["genre"] is None
    assert bad_status == 400
    message = json.loads(bad_body)
    assert "'path' column" in message["message"] and "stack_trace" not in message
    assert "Traceback" not in bad_body.decode()
    with pytest.raises(urllib.error.URLError):  # the whole server is gone
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)


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


def test_best_model_kind_compares_each_pipelines_best_model_by_the_one_rule(monkeypatch):
    """#23: best_model_kind reads each pipeline's best row from music_genre.selection, the row
    that best_models.csv and the training nodes name."""
    from music_genre import selection
    from music_genre.predict import best_model_kind

    chosen = []
    real = selection.best_row

    def spy(table, rule):
        row = real(table, rule)
        chosen.append(None if row is None else row.get("units", row.get("backbone")))
        return row

    monkeypatch.setattr(selection, "best_row", spy)
    results = {
        "handcrafted": pd.DataFrame(
            {"units": ["(512, 512)", "(512)"], "val_acc": [0.8, 0.8], "val_loss": [1.1, 0.9]}
        ),
        "cnn": None,
        "transfer": pd.DataFrame({"backbone": ["vgg16"], "cv_accuracy": [0.8]}),
    }
    assert best_model_kind(results) == "handcrafted"  # a tie across pipelines: MODEL_KINDS order
    assert chosen == ["(512)", "vgg16"]


def test_genre_predict_leaves_no_mlflow_store_in_the_working_folder(tmp_path, files):
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "genre-predict"),
            "--project",
            str(root),
            "--model",
            "cnn",
            str(files["clip"]),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert list(tmp_path.iterdir()) == [], result.stderr[-2000:]
    assert result.returncode in (0, 1, 2), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
