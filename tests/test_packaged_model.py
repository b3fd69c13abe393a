"""The logged genre predictor is self-contained (issue #24): its fitted parts are MLflow
artifacts, with a signature, an input example, pinned requirements and the package's code, and
the model loaded from them predicts what the predictor predicts in process."""

from __future__ import annotations

import base64
import importlib.metadata
import json
import pickle
from pathlib import Path

import cloudpickle
import keras
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from sklearn.preprocessing import StandardScaler

from music_genre.models.array_estimators import RTOL, ArrayEstimator
from music_genre.models.inference import OnnxModel
from music_genre.serving import HandcraftedPredictor, export_networks, package, predict_file
from music_genre.serving.package import (
    PACKAGE_FOLDER,
    SERVE_REQUIREMENTS,
    PackageError,
    load_package,
    load_predictor,
    log_genre_predictor,
    read_manifest,
    save_package,
    save_predictor,
)
from music_genre.serving.served_model import GenrePredictorModel
from tests.helpers.predictors import tiny_cnn_predictor
from tests.test_predict import GENRES, SETTINGS, _write_mp3

# The same ONNX graph run on the same input by two sessions of one ONNX Runtime: only the
# order of float32 reductions may differ (a few ulp of probabilities below 1).
SAME_GRAPH_ATOL = 1e-6


@pytest.fixture(scope="module")
def exported():
    return export_networks(tiny_cnn_predictor(GENRES, SETTINGS, seed=3))


@pytest.mark.slow
@pytest.mark.numeric
def test_the_logged_model_carries_its_parts_and_predicts_from_them(
    mlflow_store, exported, tmp_path
):
    mlflow = mlflow_store
    with mlflow.start_run() as run:
        assert log_genre_predictor(GenrePredictorModel(exported, min_seconds=2.0)) == "pyfunc"
    uri = f"runs:/{run.info.run_id}/model"
    local = Path(mlflow.artifacts.download_artifacts(uri))
    conf = yaml.safe_load((local / "MLmodel").read_text())
    pyfunc = conf["flavors"]["python_function"]
    assert set(pyfunc["artifacts"]) == {"predictor", "class_names", "network"}
    network = local / pyfunc["artifacts"]["network"]["path"]
    assert network.read_bytes() == exported.model.serialized
    assert json.loads((local / "artifacts/class_names.json").read_text()) == GENRES
    # the pickled python model holds the limits, not the predictor
    with open(local / pyfunc["python_model"], "rb") as source:
        light = cloudpickle.load(source)
    assert light.predictor is None and light.min_seconds == 2.0
    # the package's source, for an environment without the project
    assert (local / pyfunc["code"] / "music_genre/serving/package.py").is_file()
    assert not list((local / pyfunc["code"]).rglob("__pycache__"))
    # requirements: exactly the installed versions of what the served predictor imports
    pins = (local / "requirements.txt").read_text().split()
    assert pins == [f"{d}=={importlib.metadata.version(d)}" for d in SERVE_REQUIREMENTS]
    # signature: optional audio/name/path in; path, genre, a probability per genre, error out
    signature = conf["signature"]
    assert [c["name"] for c in json.loads(signature["inputs"])] == ["audio", "name", "path"]
    outputs = json.loads(signature["outputs"])
    assert [c["name"] for c in outputs] == ["path", "genre", *GENRES, "error"]
    # the input example: a decodable MP3's bytes in the audio column
    example = json.loads((local / "input_example.json").read_text())
    row = dict(zip(example["columns"], example["data"][0], strict=True))
    mp3 = tmp_path / "example.mp3"
    mp3.write_bytes(base64.b64decode(row["audio"]))
    assert sf.info(str(mp3)).duration > 3.0

    served = mlflow.pyfunc.load_model(uri)
    song = _write_mp3(tmp_path / "song.mp3", 7.0)
    frame = served.predict(
        pd.DataFrame({"audio": [base64.b64encode(song.read_bytes()).decode()], "name": ["s"]})
    )
    assert frame["error"][0] == ""
    expected = predict_file(exported, song)
    assert frame["genre"][0] == expected.top(1)[0][0]
    np.testing.assert_allclose(
        [frame[g][0] for g in GENRES],
        [expected.probabilities[g] for g in GENRES],
        rtol=0,
        atol=SAME_GRAPH_ATOL,
    )
    assert isinstance(served.unwrap_python_model().predictor.model, OnnxModel)


@pytest.mark.numeric
def test_a_handcrafted_predictor_round_trips_through_its_artifacts(tmp_path):
    keras.utils.set_random_seed(0)
    mlp = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(len(GENRES), activation="softmax")]
    )
    rows = np.random.default_rng(0).normal(size=(20, 4))
    predictor = export_networks(
        HandcraftedPredictor(
            model=mlp,
            scaler=StandardScaler().fit(rows),
            class_names=GENRES,
            feature_settings={"sample_rate": 22050},
        )
    )
    files = save_predictor(predictor, tmp_path / "parts")
    assert set(files) == {"predictor", "class_names", "network", "scaler"}
    # the skeleton holds neither the network nor the scaler
    with open(files["predictor"], "rb") as source:
        skeleton = pickle.load(source)
    assert skeleton.model is None and skeleton.scaler is None
    assert predictor.model is not None and predictor.scaler is not None  # untouched

    loaded = load_predictor(files)
    np.testing.assert_array_equal(loaded.scaler.transform(rows), predictor.scaler.transform(rows))
    scaled = predictor.scaler.transform(rows).astype(np.float32)
    np.testing.assert_allclose(
        loaded.probabilities(scaled), predictor.probabilities(scaled), rtol=0, atol=SAME_GRAPH_ATOL
    )


def test_class_names_that_disagree_with_the_predictor_are_refused(tmp_path, exported):
    files = save_predictor(exported, tmp_path / "parts")
    Path(files["class_names"]).write_text(json.dumps(list(reversed(GENRES))))
    with pytest.raises(ValueError, match="predicts"):
        load_predictor(files)


def _handcrafted_predictor() -> HandcraftedPredictor:
    keras.utils.set_random_seed(0)
    mlp = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(len(GENRES), activation="softmax")]
    )
    rows = np.random.default_rng(0).normal(size=(20, 4)) * 3.0 + 1.0
    return export_networks(
        HandcraftedPredictor(
            model=mlp,
            scaler=StandardScaler().fit(rows),
            class_names=GENRES,
            feature_settings={"sample_rate": 22050},
        )
    )


@pytest.mark.numeric
def test_the_package_folder_holds_arrays_not_pickled_estimators(tmp_path):
    """genre-predict's folder: the scaler as .npz (no scikit-learn to load it), every file's
    SHA-256 in the manifest, and the loaded predictor computes what the original does."""
    predictor = _handcrafted_predictor()
    folder = tmp_path / "data/06_models/genre_predictor"
    save_package(predictor, folder, {"chosen_by": "best", "model_kind": "handcrafted"})
    manifest = read_manifest(folder)
    assert manifest["chosen_by"] == "best" and manifest["class_names"] == GENRES
    assert {e["file"] for e in manifest["files"].values()} == {
        "network.onnx",
        "scaler.npz",
        "class_names.json",
        "predictor.pkl",
    }
    assert oct(folder.stat().st_mode & 0o777) != oct(0o700)  # not mkdtemp's private mode
    loaded = load_package(folder)
    assert isinstance(loaded.scaler, ArrayEstimator)
    rows = np.random.default_rng(1).normal(size=(5, 4))
    # float64 arithmetic in another order (array_estimators.RTOL)
    np.testing.assert_allclose(
        loaded.scaler.transform(rows), predictor.scaler.transform(rows), rtol=RTOL
    )
    scaled = predictor.scaler.transform(rows).astype(np.float32)
    np.testing.assert_allclose(
        loaded.probabilities(scaled), predictor.probabilities(scaled), rtol=0, atol=SAME_GRAPH_ATOL
    )


def test_a_damaged_or_missing_package_file_is_named_with_the_fix(tmp_path):
    folder = tmp_path / "genre_predictor"
    with pytest.raises(PackageError, match="kedro run --pipeline=serving"):
        load_package(folder)
    save_package(_handcrafted_predictor(), folder, {})
    network = folder / "network.onnx"
    data = bytearray(network.read_bytes())
    data[len(data) // 2] ^= 0xFF
    network.write_bytes(bytes(data))
    with pytest.raises(PackageError, match=r"network\.onnx: missing or damaged"):
        load_package(folder)
    (folder / "scaler.npz").unlink()
    with pytest.raises(PackageError, match=r"(network\.onnx|scaler\.npz): missing or damaged"):
        load_package(folder)


def test_an_interrupted_save_keeps_the_previous_package(tmp_path, monkeypatch):
    folder = tmp_path / "genre_predictor"
    save_package(_handcrafted_predictor(), folder, {"model_kind": "first"})

    def interrupted(predictor, staging):
        (staging / "half.onnx").write_bytes(b"\0" * 10)
        raise KeyboardInterrupt

    monkeypatch.setattr(package, "save_predictor", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_package(_handcrafted_predictor(), folder, {"model_kind": "second"})
    assert read_manifest(folder)["model_kind"] == "first"
    load_package(folder)  # every checksum still holds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["genre_predictor"]  # no staging left


def test_the_catalog_writes_the_package_where_genre_predict_reads_it():
    """PACKAGE_FOLDER (genre-predict, without Kedro) and the catalog's entry are one path, in
    every environment that ships with the project."""
    from kedro.config import OmegaConfigLoader

    from music_genre.config.loader import CONFIG_LOADER_ARGS

    root = Path(__file__).resolve().parents[1]
    envs = [env for env in ("local", "demo", "team") if (root / "conf" / env).is_dir()]
    assert "demo" in envs
    for env in envs:
        loader = OmegaConfigLoader(
            conf_source=str(root / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": env}
        )
        entry = loader["catalog"]["genre_predictor_package"]
        assert Path(entry["filepath"]) == PACKAGE_FOLDER, env
