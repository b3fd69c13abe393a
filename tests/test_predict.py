"""Prediction: the same preprocessing as training, per-file errors, the CLI and the served model."""

from __future__ import annotations

import base64
import json
import os
import pickle
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from music_genre.audio.spectrograms import STUDY_SETTINGS, spectrogram_settings
from music_genre.commands import predict as predict_cli
from music_genre.datasets import SpectrogramStoreDataset
from music_genre.pipelines.spectrogram.nodes import compute_log_mel_spectrograms
from music_genre.serving import (
    CnnPredictor,
    PredictionError,
    export_networks,
    predict_file,
    window_offsets,
)
from music_genre.serving.package import PACKAGE_FOLDER, load_package, save_package
from music_genre.serving.served_model import PATH_REFUSED, GenrePredictorModel
from tests.helpers.predictors import tiny_cnn_predictor
from tests.helpers.processes import make_serve, run_command
from tests.helpers.serving import package_and_register

GENRES = ["Folk", "Pop", "Rock"]
SETTINGS = spectrogram_settings(
    {**STUDY_SETTINGS, "pad_mode": "repeat", "storage_dtype": "float16"}
)


def _write(path: Path, seconds: float, rate: int = 44100, channels: int = 2) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.3 * t))
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)
    return path


def _write_mp3(path: Path, seconds: float, rate: int = 22050) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
    sf.write(path, np.stack([wave, wave], axis=1), rate, format="MP3")
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
        "song": _write_mp3(root / "song.mp3", 31.0),
    }


@pytest.fixture(scope="module")
def predictor() -> CnnPredictor:
    return tiny_cnn_predictor(GENRES, SETTINGS, seed=0)


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


@pytest.mark.numeric
def test_cli_passes_urls_through(cli_with, files, predictor, capsys):
    """`genre-predict s3://bucket/x.mp3` was made "<cwd>/s3:/bucket/x.mp3: file not found":
    a URL now reaches the decoder as it is (fsspec's memory:// filesystem stands for S3)."""
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.pipe("/bucket/clip.wav", files["clip"].read_bytes())
    try:
        code = cli_with.main(
            ["--model", "cnn", "--json", "memory://bucket/clip.wav", "memory://bucket/gone.wav"]
        )
    finally:
        memory.rm("/bucket", recursive=True)
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [item["path"] for item in out] == [
        "memory://bucket/clip.wav",
        "memory://bucket/gone.wav",
    ]
    expected = predict_file(predictor, files["clip"])
    assert [t["genre"] for t in out[0]["top"]] == [g for g, _ in expected.top(3)]
    assert out[1]["error"] == "memory://bucket/gone.wav: file not found"


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


SERVE_MAX_BYTES = 2_000_000  # the packaged model's serving.max_bytes (the song has ~100 kB)


def _timed_post(port: int, payload: dict) -> tuple[int, dict, float]:
    started = time.monotonic()
    status, body = _post(port, payload)
    elapsed = time.monotonic() - started
    # strict JSON: Python's parser must not meet NaN or Infinity
    parsed = json.loads(body, parse_constant=lambda c: pytest.fail(f"{c} in the response"))
    return status, parsed, elapsed


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _hostile_requests(tmp_path: Path) -> dict[str, dict]:
    """Each hostile input of issue #24 as one request body."""
    secret = tmp_path / "shadow"  # stands for /etc/shadow: unreadable, not audio
    secret.write_text("root:$6$salt$hash:19000:0:99999:7:::\n")
    secret.chmod(0)
    os.mkfifo(tmp_path / "fifo.mp3")
    (tmp_path / "zero.mp3").symlink_to("/dev/zero")

    def path(p: str | Path) -> dict:
        return {"dataframe_split": {"columns": ["path"], "data": [[str(p)]]}}

    def audio(data: str) -> dict:
        return {"dataframe_records": [{"audio": data, "name": "x.mp3"}]}

    return {
        "/etc/shadow": path("/etc/shadow"),
        "unreadable file (mode 000)": path(secret),
        "nonexistent path": path("/root/nonexistent.mp3"),
        "directory": path("/root"),
        "FIFO": path(tmp_path / "fifo.mp3"),
        "symlink to /dev/zero": path(tmp_path / "zero.mp3"),
        "non-audio bytes": audio(base64.b64encode(b"not audio at all" * 256).decode()),
        "oversized bytes": audio(base64.b64encode(os.urandom(SERVE_MAX_BYTES + 1)).decode()),
        "invalid base64": audio("this is not base64!"),
        "too many rows": {"dataframe_split": {"columns": ["audio"], "data": [["AAAA"]] * 17}},
    }


def _package_with_the_serving_pipeline(predictor: CnnPredictor, tmp_path: Path) -> str:
    """The serving pipeline run on a CNN (the fixture's network as ``cnn_best_model``): its
    node packages the predictor (ONNX export included), its catalog dataset logs the run into
    ``tmp_path/mlflow.db`` and its registration node registers it as the champion
    ``genre_predictor``. Returns the store's URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    serving = {"model": "best", "min_seconds": 3.0, "max_windows": 10, "max_bytes": SERVE_MAX_BYTES}
    package_and_register(predictor.model, GENRES, dict(SETTINGS), tmp_path, uri, serving)
    return uri


@pytest.mark.slow
def test_make_serve_serves_the_model_the_serving_pipeline_packaged(files, predictor, tmp_path):
    """`make serve` end to end on what the serving pipeline logged: the run id comes from the
    MLflow store, the served CNN runs from its ONNX export; a client sends its file's bytes and
    gets what genre-predict gives for that file; paths are refused; every hostile input of
    issue #24 is answered with a clear error within 5 s and the server keeps answering; strict
    JSON out, a short 400 for a wrong request."""
    uri = _package_with_the_serving_pipeline(predictor, tmp_path)
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert runs["run_name"].tolist() == ["genre predictor: cnn (study, 4 blocks)"]
    run_id = runs["run_id"].iloc[0]
    # what genre-predict computes with the exported network the server runs (the ONNX export
    # was checked against Keras when the pipeline packaged it)
    exported = export_networks(pickle.loads(pickle.dumps(predictor)))
    assert exported.runtime == "onnxruntime"
    expected_onnx = predict_file(exported, files["song"])
    hostile = _hostile_requests(tmp_path)
    answers = {}
    root = Path(__file__).resolve().parents[1]
    with make_serve(root, tmp_path / "serve.log", MLFLOW_URI=uri) as port:
        song = _b64(files["song"])
        split = {"dataframe_split": {"columns": ["audio", "name"], "data": [[song, "song.mp3"]]}}
        records = {"dataframe_records": [{"audio": song}, {"path": str(files["clip"])}]}
        answers["split"] = _timed_post(port, split)
        answers["records"] = _timed_post(port, records)
        for name, payload in hostile.items():
            answers[name] = _timed_post(port, payload)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as ping:
                assert ping.status == 200, name  # still answering
        answers["after"] = _timed_post(port, split)
        answers["wrong column"] = _timed_post(
            port, {"dataframe_split": {"columns": ["file"], "data": [[str(files["clip"])]]}}
        )
    # make serve serves the registry's champion, which is this run's predictor
    assert "models:/genre_predictor@champion" in (tmp_path / "serve.log").read_text()
    registered = json.loads((tmp_path / "registered.json").read_text())
    assert registered["alias"] == "champion" and registered["tags"]["run_id"] == run_id
    for name in ("split", "records", "after"):
        status, body, _ = answers[name]
        assert status == 200, body
        row = body["predictions"][0]
        assert row["error"] == "" and row["genre"] == expected_onnx.top(1)[0][0]
        for genre in GENRES:  # the bytes sent give what the file gives genre-predict
            assert row[genre] == pytest.approx(expected_onnx.probabilities[genre], abs=1e-5)
        assert sum(row[g] for g in GENRES) == pytest.approx(1.0, abs=1e-5)
    assert answers["split"][1]["predictions"][0]["path"] == "song.mp3"
    refused = answers["records"][1]["predictions"][1]
    assert refused["error"] == f"{files['clip']}: {PATH_REFUSED}"
    assert all(refused[g] is None for g in GENRES) and refused["genre"] is None
    messages = {
        "non-audio bytes": "cannot decode as audio",
        "oversized bytes": f"x.mp3: too large: {SERVE_MAX_BYTES + 1} bytes > serving.max_bytes",
        "invalid base64": "invalid base64",
    }
    for name in hostile:
        status, body, elapsed = answers[name]
        print(f"{name}: {status} {json.dumps(body)[-160:]} in {elapsed:.2f} s")  # noqa: T201
        assert elapsed < 5.0, (name, elapsed)
        if name == "too many rows":
            assert status == 400
            assert "too many files: 17 rows > serving.max_files=16" in body["message"]
            continue
        assert status == 200, (name, body)
        error = body["predictions"][0]["error"]
        if name in messages:
            assert messages[name] in error, (name, error)
        else:  # a path: the same answer whatever is (or is not) there
            path = hostile[name]["dataframe_split"]["data"][0][0]
            assert error == f"{path}: {PATH_REFUSED}", (name, error)
    # the folder the serving pipeline packaged for genre-predict answers as the server does
    packaged = predict_file(load_package(tmp_path / "genre_predictor"), files["song"])
    served = answers["split"][1]["predictions"][0]
    assert packaged.top(1)[0][0] == served["genre"]
    for genre in GENRES:
        assert served[genre] == pytest.approx(packaged.probabilities[genre], abs=1e-5)
    status, message, _ = answers["wrong column"]
    assert status == 400
    assert "'audio' column" in message["message"] and "stack_trace" not in message
    assert "Traceback" not in json.dumps(message)
    with pytest.raises(urllib.error.URLError):  # the whole server is gone
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)


def test_best_model_kind_uses_held_out_accuracy_only():
    from music_genre.serving import PredictionError, best_model_kind

    results = {
        "handcrafted": pd.DataFrame({"val_accuracy": [0.6], "test_accuracy": [0.9]}),
        "cnn": None,
        "transfer": pd.DataFrame({"cv_accuracy": [0.7], "test_accuracy": [0.1]}),
    }
    assert best_model_kind(results) == "transfer"
    with pytest.raises(PredictionError, match="no trained model"):
        best_model_kind({"handcrafted": None, "cnn": None, "transfer": None})


def test_best_model_kind_compares_each_pipelines_best_model_by_the_one_rule(monkeypatch):
    """#23: best_model_kind reads each pipeline's best row from music_genre.models.selection, the row
    that best_models.csv and the training nodes name."""
    from music_genre.models import selection
    from music_genre.serving import best_model_kind

    chosen = []
    real = selection.best_row

    def spy(table, rule):
        row = real(table, rule)
        chosen.append(None if row is None else row.get("units", row.get("backbone")))
        return row

    monkeypatch.setattr(selection, "best_row", spy)
    results = {
        "handcrafted": pd.DataFrame(
            {"units": ["(512, 512)", "(512)"], "val_accuracy": [0.8, 0.8], "val_loss": [1.1, 0.9]}
        ),
        "cnn": None,
        "transfer": pd.DataFrame({"backbone": ["vgg16"], "cv_accuracy": [0.8]}),
    }
    assert best_model_kind(results) == "handcrafted"  # a tie across pipelines: MODEL_KINDS order
    assert chosen == ["(512)", "vgg16"]


@pytest.mark.slow
def test_genre_predict_run_id_reads_the_projects_store_wherever_it_runs(tmp_path, files, predictor):
    """`--run-id` is the only path that opens the MLflow store: the project's store, by an
    absolute URI. A relative ``sqlite:///mlflow.db`` created an empty store in the folder the
    command ran from, which then lacked the run."""
    project = tmp_path / "project"
    project.mkdir()
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    previous = Path.cwd()
    os.chdir(project)  # MLflow's default artifact folder (./mlruns) goes there too
    try:
        with mlflow.start_run(tags={"served_model": "genre_predictor"}) as run:
            mlflow.pyfunc.log_model(
                name="model",
                python_model=GenrePredictorModel(predictor),
                pip_requirements=["mlflow"],
            )
    finally:
        os.chdir(previous)
        mlflow.set_tracking_uri("")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    result = run_command(
        [
            str(Path(sys.executable).parent / "genre-predict"),
            "--project",
            str(project),
            "--run-id",
            run.info.run_id,
            "--json",
            str(files["clip"]),
        ],
        cwd=work,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(work.iterdir()) == []
    (item,) = json.loads(result.stdout)
    assert item["model"] == f"mlflow run {run.info.run_id}"
    expected = predict_file(predictor, files["clip"])
    assert [t["genre"] for t in item["top"]] == [genre for genre, _ in expected.top(3)]


@pytest.mark.slow
def test_genre_predict_model_uri_defaults_to_the_registered_champion(tmp_path, files, predictor):
    """`genre-predict --model-uri` alone predicts with models:/genre_predictor@champion of the
    project's store (what the serving pipeline registered); an unknown URI is a clear error."""
    project = tmp_path / "project"
    project.mkdir()
    uri = f"sqlite:///{project / 'mlflow.db'}"
    serving = {"model": "best", "min_seconds": 3.0, "max_windows": 10}
    package_and_register(predictor.model, GENRES, dict(SETTINGS), project, uri, serving)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    command = [str(Path(sys.executable).parent / "genre-predict"), "--project", str(project)]
    result = run_command(
        [*command, "--model-uri", "--json", str(files["clip"])], env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (item,) = json.loads(result.stdout)
    assert item["model"] == "models:/genre_predictor@champion"
    expected = predict_file(export_networks(pickle.loads(pickle.dumps(predictor))), files["clip"])
    assert [t["genre"] for t in item["top"]] == [genre for genre, _ in expected.top(3)]
    missing = run_command(
        [*command, "--model-uri", "models:/genre_nothing@champion", str(files["clip"])],
        env=env,
        timeout=300,
    )
    assert (
        missing.returncode == 2 and "cannot load models:/genre_nothing@champion" in missing.stderr
    )


def _packaged_project(predictor, root: Path, chosen_by: str = "best") -> Path:
    """A project folder holding only the serving pipeline's package (and a trained model file
    older than it)."""
    models = root / PACKAGE_FOLDER.parent
    models.mkdir(parents=True)
    older = models / "cnn_best.keras"
    older.write_bytes(b"a trained model")
    os.utime(older, (time.time() - 60, time.time() - 60))
    save_package(
        export_networks(pickle.loads(pickle.dumps(predictor))),
        root / PACKAGE_FOLDER,
        {"chosen_by": chosen_by, "model_kind": "cnn"},
    )
    return root


def _catalog_refused(project, env):
    raise PredictionError("the catalog's models were asked for")


@pytest.mark.numeric
def test_genre_predict_answers_from_the_package_without_a_kedro_context(
    monkeypatch, files, predictor, tmp_path, capsys
):
    project = _packaged_project(predictor, tmp_path / "project")
    monkeypatch.setattr(predict_cli, "_kedro_context", _catalog_refused)
    code = predict_cli.main(["--project", str(project), "--json", str(files["song"])])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    expected = predict_file(export_networks(pickle.loads(pickle.dumps(predictor))), files["song"])
    assert out[0]["runtime"] == "onnxruntime"
    assert [t["genre"] for t in out[0]["top"]] == [g for g, _ in expected.top(3)]
    # the same ONNX graph and arrays: only float32 reduction order may differ
    assert out[0]["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)


@pytest.mark.parametrize("case", ["newer model", "another model asked", "chosen by config"])
def test_genre_predict_leaves_a_package_that_does_not_answer_the_question(
    monkeypatch, files, predictor, tmp_path, capsys, caplog, case
):
    """A model trained after the package (`kedro run --pipeline=transfer` alone), `--model
    cnn`, or a package of `serving.model: cnn` (not the best): the catalog's models answer."""
    chosen_by = "cnn" if case == "chosen by config" else "best"
    project = _packaged_project(predictor, tmp_path / "project", chosen_by)
    args = ["--project", str(project), str(files["song"])]
    if case == "newer model":
        (project / PACKAGE_FOLDER.parent / "transfer_best_model.pkl").write_bytes(b"retrained")
    if case == "another model asked":
        args = ["--model", "cnn", *args]
    monkeypatch.setattr(predict_cli, "_kedro_context", _catalog_refused)
    assert predict_cli.main(args) == 2
    assert "the catalog's models were asked for" in capsys.readouterr().err
    if case == "newer model":
        assert "transfer_best_model.pkl is newer than the packaged predictor" in caplog.text


def test_genre_predict_with_a_package_imports_neither_kedro_nor_scikit_learn(
    files, predictor, tmp_path
):
    """What the package buys: its start-up imports no Kedro, scikit-learn, pandas or
    TensorFlow (1.5 s of the 2.2 s measured before it; docs/serving.md)."""
    project = _packaged_project(predictor, tmp_path / "project")
    code = (
        "import sys; from music_genre.commands import predict; "
        f"code = predict.main(['--project', {str(project)!r}, {str(files['song'])!r}]); "
        "print(sorted(m for m in ('kedro', 'sklearn', 'pandas', 'tensorflow', 'mlflow') "
        "if m in sys.modules)); sys.exit(code)"
    )
    done = run_command([sys.executable, "-c", code], timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_prediction_runs_with_one_blas_thread_and_restores_it(files):
    """As the training pipelines computed the inputs (infra.parallel), and so that idle
    OpenBLAS threads do not take the cores from ONNX Runtime's (docs/prediction-and-serving)."""
    from threadpoolctl import threadpool_info

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    seen: list[set[int]] = []

    class Recording:
        label = "recording"
        class_names = GENRES

        def window_s(self) -> float:
            return 29.7

        def window_probabilities(self, path, offsets):
            seen.append(blas_threads())
            return np.full((len(offsets), len(GENRES)), 1.0 / len(GENRES))

    before = blas_threads()
    result = predict_file(Recording(), files["clip"])
    assert result.error is None and seen == [{1}]
    assert blas_threads() == before
