"""The transfer model's backbone exported to ONNX: the export of a cut level equals the Keras
network (musicnn with its shipped weights; a small image backbone, random weights), an export
of another backbone, weights or cut level is refused (the Keras backbone is used, saying so),
and ``genre-predict --model transfer`` runs from the export without importing TensorFlow."""

from __future__ import annotations

import logging
import pickle
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from music_genre.audio.spectrograms import STUDY_SETTINGS, spectrogram_settings
from music_genre.datasets import AtomicPickleDataset, OnnxModelDataset
from music_genre.models.backbones import (
    BACKBONES,
    BackboneSpec,
    WeightsChoice,
    check_exported_cut_network,
    cut_network,
    export_transfer_backbone,
    get_backbone,
    register_backbone,
)
from music_genre.models.inference import (
    ONNX_TOLERANCE,
    ExportedModelError,
    OnnxModel,
    output_difference,
)
from music_genre.models.musicnn import musicnn_patch_outputs, musicnn_signal_patches
from music_genre.serving import (
    TransferPredictor,
    build_predictor,
    export_networks,
    predict_file,
)
from tests.helpers.predict_subprocess import run_predict_cli

ROOT = Path(__file__).resolve().parents[1]
GENRES = ["Folk", "Pop", "Rock"]
SETTINGS = spectrogram_settings(
    {**STUDY_SETTINGS, "pad_mode": "repeat", "storage_dtype": "float16"}
)

pytestmark = pytest.mark.numeric  # float results of TensorFlow / ONNX Runtime: make test-numeric

TINY = "tiny_image_backbone"


def _tiny_image_backbone(weights: str | None) -> keras.Model:
    """An image backbone shaped like VGG16 (conv blocks, pooling, dense top) at a size a test
    builds and exports in a second."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="block1_conv")(inputs)
    x = keras.layers.BatchNormalization(name="block1_bn")(x)
    x = keras.layers.MaxPooling2D(name="block1_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(16, activation="relu", name="fc1")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="predictions")(x), name=TINY)


@pytest.fixture(autouse=True)
def tiny_backbone():
    register_backbone(
        BackboneSpec(
            name=TINY,
            build=_tiny_image_backbone,
            preprocess=lambda x: x - 127.5,
            cut_levels=("block1_pool", "fc1"),
            input_size=(32, 32),
        )
    )
    yield
    BACKBONES.pop(TINY, None)


def _music(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Notes with harmonics and a noise floor: excites musicnn's filters as music does."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.01 * rng.standard_normal(t.size)
    for start in np.arange(0.0, seconds, 0.5):
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        note = (t >= start) & (t < start + 0.45)
        for harmonic in (1, 2, 3):
            signal[note] += 0.2 * np.sin(2 * np.pi * f0 * harmonic * t[note]) / harmonic
    return signal.astype(np.float32)


def _bundle(backbone: str, cut: str, weights: str, feature_size: int, seed: int = 0) -> dict:
    """A transfer model as select_best_transfer_model stores it; its classifier is fitted on
    random features (this test checks the features, not the genres)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (30, feature_size))
    model = make_pipeline(StandardScaler(), PCA(0.9), LinearSVC()).fit(x, np.arange(30) % 3)
    choice = WeightsChoice.from_label(weights, seed=seed)
    is_audio = get_backbone(backbone).input_kind == "audio"
    return {
        "model": model,
        "backbone": backbone,
        "cut_level": cut,
        "weights": weights,
        "weights_fingerprint": choice.fingerprint(),
        "random_seed": seed,
        "image_interpolation": "bilinear",
        "input_kind": "audio" if is_audio else "spectrogram",
        "audio_duration_s": 29.7 if is_audio else None,
        "audio_pad_mode": "repeat" if is_audio else None,
        "class_names": GENRES,
        "classifier": "svm_linear",
    }


@pytest.fixture(scope="module")
def musicnn_bundle() -> dict:
    return _bundle("musicnn", "pooled", "msd", 1506)


@pytest.fixture(scope="module")
def musicnn_export(musicnn_bundle) -> OnnxModel:
    return export_transfer_backbone(musicnn_bundle)


@pytest.mark.slow
def test_musicnn_export_equals_the_keras_network(musicnn_export):
    """On the patches of a music-like clip (not the probe batch), the export's pooled features
    equal the Keras network's to ONNX_TOLERANCE of their scale (float32 rounding of different
    kernels: measured ~2e-6), and it records what it is."""
    spec, weights = get_backbone("musicnn"), WeightsChoice("msd")
    patches = musicnn_signal_patches(_music(12.0, 16000))
    expected = np.asarray(cut_network(spec, weights, "pooled")(patches, training=False))
    got = musicnn_export(patches)
    assert got.shape == expected.shape == (4, 1506)
    assert output_difference(got, expected) <= ONNX_TOLERANCE
    # the full network's pooled output, as the transfer pipeline extracted it, is the same
    keras_full = musicnn_patch_outputs(patches, spec.build("MSD_musicnn"))["pooled"]
    through_export = musicnn_patch_outputs(patches, musicnn_export)["pooled"]
    assert output_difference(through_export, keras_full) <= ONNX_TOLERANCE
    recorded = musicnn_export.metadata
    assert {
        k: recorded[k] for k in ("backbone", "weights", "weights_fingerprint", "cut_level")
    } == {
        "backbone": "musicnn",
        "weights": "msd",
        "weights_fingerprint": "msd",
        "cut_level": "pooled",
    }
    assert float(recorded["max_abs_difference"]) <= ONNX_TOLERANCE


def test_image_backbone_cut_export_equals_keras_and_predicts_the_same(tmp_path, caplog):
    """A random-initialised (seeded) image backbone, cut at its pooling layer: the export gives
    the Keras cut's features; the predictor built with it gives the Keras predictor's genres."""
    bundle = _bundle(TINY, "block1_pool", "random", 15 * 15 * 4, seed=7)
    exported = export_transfer_backbone(bundle)
    keras_cut = cut_network(get_backbone(TINY), WeightsChoice("random", seed=7), "block1_pool")
    x = np.random.default_rng(1).uniform(-127.5, 127.5, (3, 32, 32, 3)).astype(np.float32)
    assert output_difference(exported(x), np.asarray(keras_cut(x, training=False))) <= (
        ONNX_TOLERANCE
    )

    clip = tmp_path / "clip.wav"
    sf.write(clip, _music(31.0, 22050), 22050)
    fast = TransferPredictor(bundle=bundle, spectrogram_settings=SETTINGS, backbone=exported)
    slow = TransferPredictor(bundle=bundle, spectrogram_settings=SETTINGS)
    assert (fast.runtime, slow.runtime) == ("onnxruntime", "keras")
    f_fast, f_slow = fast.features(str(clip), [0.0]), slow.features(str(clip), [0.0])
    assert output_difference(f_fast, f_slow) <= ONNX_TOLERANCE
    a, b = predict_file(fast, clip), predict_file(slow, clip)
    for genre in GENRES:
        assert a.probabilities[genre] == pytest.approx(b.probabilities[genre], abs=1e-3)
    # the served model pickles the export, not the Keras backbone
    served = pickle.loads(pickle.dumps(export_networks(slow)))
    assert served.runtime == "onnxruntime"
    np.testing.assert_allclose(served.features(str(clip), [0.0]), f_fast, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"cut_level": "penultimate"}, "cut_level 'pooled'"),
        ({"weights": "mtt", "weights_fingerprint": "mtt"}, "weights_fingerprint 'msd'"),
        ({"backbone": "vgg16", "weights_fingerprint": "imagenet"}, "backbone 'musicnn'"),
    ],
    ids=["other cut", "other weights", "other backbone"],
)
def test_export_of_another_backbone_weights_or_cut_is_refused(
    musicnn_bundle, musicnn_export, change, reason, caplog
):
    other = {**musicnn_bundle, **change}
    with pytest.raises(ExportedModelError, match=reason):
        check_exported_cut_network(musicnn_export, other)
    predictor = TransferPredictor(bundle=other, spectrogram_settings=SETTINGS)
    predictor.backbone = musicnn_export
    with caplog.at_level(logging.WARNING, logger="music_genre.serving"):
        assert predictor.runtime == "keras"
    assert reason in caplog.text and "using the Keras backbone" in caplog.text
    assert predictor.backbone is None  # the refused export is dropped, not retried
    check_exported_cut_network(musicnn_export, musicnn_bundle)  # its own model accepts it


def test_missing_export_falls_back_to_keras_with_its_reason(tmp_path, musicnn_bundle, caplog):
    datasets = {
        "transfer_best_model": AtomicPickleDataset(
            filepath=str(tmp_path / "transfer_best_model.pkl")
        ),
        "transfer_best_backbone": OnnxModelDataset(str(tmp_path / "transfer_best_backbone.onnx")),
    }
    datasets["transfer_best_model"].save(musicnn_bundle)
    with caplog.at_level(logging.WARNING, logger="music_genre.serving"):
        predictor = build_predictor(
            "transfer", lambda name: datasets[name].load(), {"spectrogram": SETTINGS}
        )
    assert predictor.backbone is None and predictor.runtime == "keras"
    assert "no exported model" in caplog.text and "using the Keras backbone" in caplog.text


@pytest.mark.slow
def test_genre_predict_transfer_runs_without_tensorflow(tmp_path, musicnn_bundle, musicnn_export):
    """The command end to end on a project whose transfer model (musicnn) was saved with its
    backbone's export: JSON from ONNX Runtime, and neither TensorFlow, Keras, librosa nor
    MLflow imported."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    shutil.copytree(ROOT / "conf" / "base", project / "conf" / "base")
    (project / "conf" / "local").mkdir()
    (project / "src").mkdir()  # the package itself comes from PYTHONPATH
    models = project / "data" / "06_models"
    models.mkdir(parents=True)
    AtomicPickleDataset(filepath=str(models / "transfer_best_model.pkl")).save(musicnn_bundle)
    OnnxModelDataset(str(models / "transfer_best_backbone.onnx")).save(musicnn_export)
    clip = tmp_path / "clip.wav"
    sf.write(clip, _music(31.0, 44100), 44100)
    results, imported = run_predict_cli(
        ["--project", str(project), "--model", "transfer", "--json", str(clip)],
        ("tensorflow", "keras", "librosa", "mlflow", "matplotlib"),
    )
    assert imported == []
    (result,) = results
    assert result["runtime"] == "onnxruntime"
    assert result["windows"] == 1 and {t["genre"] for t in result["top"]} <= set(GENRES)
    assert result["timing"]["end_to_end_ms"] > 0 and result["timing"]["startup_ms"] > 0
