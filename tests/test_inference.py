"""Prediction's exported models: ONNX exports equal their Keras models, a missing or stale
export is refused (prediction then uses the Keras model, saying so), and the prediction
command runs without importing TensorFlow when the exports exist."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf
from kedro.io import DatasetError

from music_genre.audio.spectrograms import STUDY_SETTINGS, spectrogram_settings
from music_genre.datasets import KerasModelDataset, OnnxModelDataset
from music_genre.models import inference
from music_genre.models.cnn import build_cnn
from music_genre.models.inference import ONNX_TOLERANCE, ExportedModelError, OnnxModel, export_onnx
from music_genre.serving import (
    CnnPredictor,
    HandcraftedPredictor,
    build_predictor,
    export_networks,
    predict_file,
)
from tests.helpers.numeric import assert_same_decision
from tests.helpers.predict_subprocess import run_predict_cli

ROOT = Path(__file__).resolve().parents[1]
GENRES = ["Folk", "Pop", "Rock"]
SETTINGS = spectrogram_settings(
    {**STUDY_SETTINGS, "pad_mode": "repeat", "storage_dtype": "float16"}
)

pytestmark = pytest.mark.numeric  # float results of TensorFlow / ONNX Runtime: make test-numeric


def _small_cnn() -> keras.Model:
    """The study's architecture (image scaling, resizing, conv blocks with batch norm, dropout,
    softmax) at a size a test trains in a second; non-trivial batch-norm statistics."""
    keras.utils.set_random_seed(3)
    model = build_cnn(
        len(GENRES),
        filters=[4, 6, 8, 8],
        kernel_size=3,
        input_shape=(32, 96, 1),
        image_size=(64, 64),
    )
    rng = np.random.default_rng(3)
    x = rng.normal(-40.0, 15.0, (12, 32, 96, 1)).astype(np.float32)
    model.fit(x, rng.integers(0, len(GENRES), 12), epochs=2, batch_size=4, verbose=0)
    return model


def _mlp() -> keras.Model:
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(len(GENRES), activation="softmax"),
        ]
    )
    return model


@pytest.mark.parametrize(
    ("make", "inputs"),
    [
        (_small_cnn, lambda rng: rng.normal(-40.0, 15.0, (5, 32, 96, 1))),
        (_mlp, lambda rng: rng.normal(0.0, 1.0, (5, 20))),
    ],
    ids=["cnn", "mlp"],
)
@pytest.mark.slow
def test_onnx_export_equals_the_keras_model(make, inputs, tmp_path):
    """Saved with onnx_export: the export, loaded without TensorFlow's help, gives the Keras
    model's inference outputs (no dropout, moving batch-norm statistics) to float32
    rounding: ONNX_TOLERANCE (1e-4) is two orders above the few-ulp differences of
    different summation orders over a few thousand float32 terms."""
    model = make()
    keras_file = tmp_path / "model.keras"
    KerasModelDataset(str(keras_file), onnx_export=True).save(model)
    exported = OnnxModelDataset(str(tmp_path / "model.onnx"), str(keras_file)).load()
    assert isinstance(exported, OnnxModel)
    x = inputs(np.random.default_rng(0)).astype(np.float32)
    expected = model(x, training=False).numpy()
    got = exported(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=ONNX_TOLERANCE)
    # same top class wherever it leads by more than twice the tolerance (a closer race may flip)
    assert_same_decision(got, expected, margin=2 * ONNX_TOLERANCE)
    # the recorded check is the one made at export time, on the probe batch
    assert float(exported.metadata["max_abs_difference"]) <= ONNX_TOLERANCE
    # the served model pickles it; the copy computes the same
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(exported))(x), got)


def test_export_beyond_the_tolerance_is_refused_and_leaves_no_file(tmp_path, monkeypatch):
    keras_file = tmp_path / "model.keras"
    KerasModelDataset(str(keras_file), onnx_export=True).save(_mlp())
    assert (tmp_path / "model.onnx").is_file()
    monkeypatch.setattr(inference, "ONNX_TOLERANCE", -1.0)  # any difference is too large
    with pytest.raises(DatasetError, match="differs from the Keras model"):
        KerasModelDataset(str(keras_file), onnx_export=True).save(_mlp())
    assert not (tmp_path / "model.onnx").exists()  # the previous model's export is gone too


@pytest.mark.slow
def test_missing_or_stale_export_is_refused_with_its_reason(tmp_path):
    keras_file, onnx_file = tmp_path / "model.keras", tmp_path / "model.onnx"
    exported = OnnxModelDataset(str(onnx_file), str(keras_file))
    with pytest.raises(DatasetError, match="no exported model"):
        exported.load()
    KerasModelDataset(str(keras_file), onnx_export=True).save(_mlp())
    exported.load()
    # retrained and saved without export: the old export is not this model's
    KerasModelDataset(str(keras_file)).save(_small_cnn())
    with pytest.raises(DatasetError, match="not exported from the current"):
        exported.load()
    with pytest.raises(DatasetError, match="not saved on its own"):
        exported.save(object())


def _clip(path: Path, seconds: float = 31.0, rate: int = 22050) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.2 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)), rate)
    return path


def _spectrogram_cnn() -> keras.Model:
    keras.utils.set_random_seed(5)
    return keras.Sequential(
        [
            keras.Input((128, 1280, 1)),
            keras.layers.Rescaling(1 / 80.0),
            keras.layers.Conv2D(4, 5, strides=4, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(GENRES), activation="softmax"),
        ]
    )


def _write_cnn(models: Path) -> None:
    models.mkdir(parents=True, exist_ok=True)
    KerasModelDataset(str(models / "cnn_best.keras"), onnx_export=True).save(_spectrogram_cnn())
    (models / "cnn_best.json").write_text(json.dumps({"class_names": GENRES, "variant": "cnn"}))


def test_without_a_valid_export_prediction_uses_the_keras_model_and_says_so(tmp_path, caplog):
    _write_cnn(tmp_path)
    clip = _clip(tmp_path / "clip.wav")
    datasets = {
        "cnn_best_model": KerasModelDataset(str(tmp_path / "cnn_best.keras")),
        "cnn_best_model_onnx": OnnxModelDataset(
            str(tmp_path / "cnn_best.onnx"), str(tmp_path / "cnn_best.keras")
        ),
    }

    def load(name):
        if name == "cnn_best_model_info":
            return json.loads((tmp_path / "cnn_best.json").read_text())
        return datasets[name].load()

    params = {"spectrogram": SETTINGS}
    fast = predict_file(build_predictor("cnn", load, params), clip)
    (tmp_path / "cnn_best.onnx").unlink()
    with caplog.at_level(logging.WARNING, logger="music_genre.serving"):
        slow = predict_file(build_predictor("cnn", load, params), clip)
    assert "no exported model" in caplog.text and "using the Keras model" in caplog.text
    assert (fast.runtime, slow.runtime) == ("onnxruntime", "keras")
    assert fast.probabilities.keys() == slow.probabilities.keys()
    for genre in GENRES:
        assert fast.probabilities[genre] == pytest.approx(slow.probabilities[genre], abs=1e-4)


def test_served_predictors_run_their_networks_from_checked_exports():
    """The serving pipeline exports the CNN and the MLP it packages: same probabilities."""
    cnn = CnnPredictor(model=_spectrogram_cnn(), class_names=GENRES, spectrogram_settings={})
    mlp = HandcraftedPredictor(model=_mlp(), scaler=None, class_names=GENRES, feature_settings={})
    rng = np.random.default_rng(1)
    for predictor, x in (
        (cnn, rng.normal(-40.0, 15.0, (2, 128, 1280, 1))),
        (mlp, rng.normal(0.0, 1.0, (2, 20))),
    ):
        x = x.astype(np.float32)
        expected = predictor.probabilities(x)
        assert predictor.runtime == "keras"
        served = pickle.loads(pickle.dumps(export_networks(predictor)))
        assert served.runtime == "onnxruntime" and isinstance(served.model, OnnxModel)
        np.testing.assert_allclose(served.probabilities(x), expected, atol=ONNX_TOLERANCE)


def test_export_refuses_a_model_it_cannot_match(monkeypatch):
    monkeypatch.setattr(inference, "ONNX_TOLERANCE", -1.0)
    with pytest.raises(ExportedModelError, match="not used"):
        export_onnx(_mlp())


@pytest.mark.slow
def test_genre_predict_runs_without_tensorflow_and_reports_its_timing(tmp_path):
    """The command end to end on a project whose CNN was saved with its export: JSON with the
    timing fields, and neither TensorFlow, Keras nor MLflow imported (seconds of start-up)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    shutil.copytree(ROOT / "conf" / "base", project / "conf" / "base")
    (project / "conf" / "local").mkdir()
    (project / "src").mkdir()  # the package itself comes from PYTHONPATH
    _write_cnn(project / "data" / "06_models")
    clip = _clip(tmp_path / "clip.wav")
    results, imported = run_predict_cli(
        ["--project", str(project), "--model", "cnn", "--json", str(clip)],
        ("tensorflow", "keras", "mlflow", "matplotlib"),
    )
    assert imported == []
    (result,) = results
    assert result["runtime"] == "onnxruntime"
    assert result["model"] == "cnn (cnn)" and result["windows"] == 1
    # the same saved CNN, run here from its Keras model: same genres in the same order, and
    # the probabilities as the command rounds them (4 decimals) within the export's tolerance
    models = project / "data" / "06_models"
    info = json.loads((models / "cnn_best.json").read_text())
    keras_cnn = KerasModelDataset(str(models / "cnn_best.keras")).load()
    expected = predict_file(
        CnnPredictor(
            model=keras_cnn, class_names=info["class_names"], spectrogram_settings=SETTINGS
        ),
        clip,
    )
    assert [t["genre"] for t in result["top"]] == [g for g, _ in expected.top(3)]
    for top in result["top"]:
        assert (
            abs(top["probability"] - expected.probabilities[top["genre"]]) <= 5e-5 + ONNX_TOLERANCE
        )
    timing = result["timing"]
    for field in ("inputs_ms", "model_ms", "end_to_end_ms", "model_repeat_ms", "startup_ms"):
        assert timing[field] > 0, field
    assert timing["end_to_end_ms"] >= timing["inputs_ms"] + timing["model_ms"] - 0.05
