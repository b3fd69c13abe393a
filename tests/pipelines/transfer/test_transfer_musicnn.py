"""musicnn as a backbone of the transfer pipeline: audio in, embeddings stored under a key that
names the weights (msd), the same classifier grid and MLflow runs, and prediction that computes
exactly the training features. Tiny generated audio in tmp_path; in-memory catalog."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from kedro.runner import SequentialRunner

from music_genre.models.backbones import (
    AudioEmbeddingExtractor,
    AudioWindow,
    BackboneWeightsError,
    get_backbone,
    resolve_weights,
)
from music_genre.models.inference import ONNX_TOLERANCE, output_difference
from music_genre.pipelines.transfer import create_pipeline
from music_genre.pipelines.transfer.nodes import (
    RESULT_COLUMNS,
    plan_transfer_features,
)
from music_genre.serving import TransferPredictor, predict_file
from tests.helpers.numeric import assert_same_decision, assert_same_network_output
from tests.helpers.transfer_catalog import save_jobs, transfer_catalog

pytest.importorskip("musicnn", reason="musicnn's weights: pip install --no-deps musicnn==0.1.0")

GENRES = ["Electronic", "Folk"]
RATE = 16000
SECONDS = 3.5  # one 187-frame patch (~3 s) per clip keeps the network cheap


def _clip(genre_index: int, i: int) -> np.ndarray:
    """Low sustained tones (genre 0) or bright noisy clicks (genre 1), slightly varied."""
    rng = np.random.default_rng(100 * genre_index + i)
    t = np.arange(int(RATE * SECONDS)) / RATE
    if genre_index == 0:
        f = 110 * (1 + 0.05 * i)
        y = sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3))
    else:
        y = 0.3 * rng.normal(size=t.size)
        y *= np.sin(2 * np.pi * (4 + i) * t) > 0.6
        y += 0.3 * np.sin(2 * np.pi * 2000 * (1 + 0.03 * i) * t)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_tracks(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    rows = []
    for label, genre in enumerate(GENRES):
        for i in range(6):
            track_id = f"9{label}{i:04d}"
            path = root / f"{track_id}.wav"
            sf.write(path, _clip(label, i), RATE)
            split = "test" if i < 2 else "training"
            rows.append(
                {
                    "track_id": track_id,
                    "path": str(path),
                    "genre": genre,
                    "label": label,
                    "split": split,
                    "duration_s": SECONDS,
                    "sample_rate": RATE,
                    "channels": 1,
                }
            )
    broken = root / "broken.mp3"
    broken.write_bytes(b"not audio at all")
    rows.append(
        {
            "track_id": "999001",
            "path": str(broken),
            "genre": "Folk",
            "label": 1,
            "split": "training",
            "duration_s": 30.0,
            "sample_rate": RATE,
            "channels": 1,
        }
    )
    return pd.DataFrame(rows)


def _params(**overrides):
    params = {
        "weights": {"musicnn": "msd"},
        "random_seed": 0,
        "audio": {"duration_s": 3.5, "pad_mode": "repeat"},
        "batch_size": 4,
        "timing_runs": 1,
        "experiments": [
            {"backbone": "musicnn", "cut_level": "penultimate", "pca_variances": [0.9]},
            {"backbone": "musicnn", "cut_level": "tags", "pca_variances": [0.99]},
        ],
        "cv_folds": 2,
        "n_jobs": 1,
        "classifiers": {
            "svm_linear": {"grid": {"C": [0.1, 1]}},
            "svm_rbf": {"fixed": {"kernel": "rbf"}, "grid": {"C": [1, 10], "gamma": [0.01]}},
        },
    }
    params.update(overrides)
    return params


def test_musicnn_weights_are_explicit():
    assert resolve_weights("msd", "musicnn").label == "msd"
    assert resolve_weights({"vgg16": None, "musicnn": "mtt"}, "musicnn").fingerprint() == "mtt"
    assert resolve_weights(None, "musicnn", seed=1).kind == "random"
    with pytest.raises(BackboneWeightsError, match="no ImageNet weights"):
        resolve_weights("imagenet", "musicnn")
    # "msd" means nothing to an ImageNet backbone: it is taken as a (missing) file, and said so
    with pytest.raises(BackboneWeightsError, match="does not exist"):
        resolve_weights("msd", "vgg16")


@pytest.mark.numeric
@pytest.mark.slow
def test_musicnn_through_the_transfer_pipeline(tmp_path, tiny_tracks, mlflow_store):
    # no spectrograms at all: musicnn reads the audio files
    catalog = transfer_catalog(tmp_path, tiny_tracks, {}, _params())
    SequentialRunner().run(create_pipeline(), catalog)

    results = catalog.load("transfer_results")
    assert list(results.columns) == RESULT_COLUMNS
    assert len(results) == 4  # 2 cut levels x 2 classifiers
    assert set(results["backbone"]) == {"musicnn"} and set(results["weights"]) == {"msd"}
    assert dict(zip(results["cut_level"], results["feature_size"], strict=False)) == {
        "penultimate": 200,
        "tags": 50,
    }
    assert (results["extract_ms_per_image"] > 0).all()
    # Pretrained music features separate tones from noisy clicks.
    assert results["cv_accuracy"].max() >= 0.9

    folder = tmp_path / "features" / "musicnn__msd__audio-3.5s-repeat"
    state = json.loads((folder / "state.json").read_text())
    assert state["description"]["weights"] == "msd"
    assert state["description"]["input_kind"] == "audio"
    assert set(state["failures"]) == {"999001"}
    assert "broken.mp3" in state["failures"]["999001"]
    excluded = catalog.load("transfer_excluded_tracks")
    assert excluded["track_id"].tolist() == ["999001"]
    assert "broken.mp3" in excluded["reason"].iloc[0]

    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 4 and set(runs["param.weights"]) == {"msd"}
    assert set(runs["param.input_kind"]) == {"audio"}

    best = catalog.load("transfer_best_model")
    assert best["backbone"] == "musicnn" and best["weights"] == "msd"
    assert best["input_kind"] == "audio" and best["audio_duration_s"] == 3.5

    # Prediction recomputes the stored training features from the audio file.
    predictor = TransferPredictor(bundle=best, spectrogram_settings={"duration_s": 29.7})
    assert predictor.window_s() == 3.5
    track = tiny_tracks.iloc[0]
    features = predictor.features(track["path"], [0.0])
    stored = catalog.load("transfer_features").matrix(
        folder.name, best["cut_level"], [track["track_id"]]
    )
    # the same network, but one clip where training ran batches of 4: other kernels may sum
    # in another order (tests/helpers/numeric.py), so equal up to float32 rounding
    assert_same_network_output(features, stored, predictor.extractor().model)
    # ... and so does its backbone's ONNX export, which the pipeline wrote for prediction
    exported = catalog.load("transfer_best_backbone")
    assert exported.metadata["cut_level"] == best["cut_level"]
    fast = TransferPredictor(
        bundle=best, spectrogram_settings={"duration_s": 29.7}, backbone=exported
    )
    assert fast.runtime == "onnxruntime"
    assert output_difference(fast.features(track["path"], [0.0]), stored) <= ONNX_TOLERANCE
    prediction = predict_file(predictor, track["path"], min_seconds=1.0)
    assert prediction.error is None and set(prediction.probabilities) == set(GENRES)
    # the promise to a user: the exported backbone predicts what the Keras one does
    through_export = predict_file(fast, track["path"], min_seconds=1.0)
    keras_row = [prediction.probabilities[g] for g in GENRES]
    export_row = [through_export.probabilities[g] for g in GENRES]
    np.testing.assert_allclose(export_row, keras_row, rtol=0, atol=1e-4)
    assert_same_decision(export_row, keras_row, margin=2e-4)

    # Re-run: every embedding is stored; the network is not even built.
    jobs = plan_transfer_features(tiny_tracks, {}, _params())
    save_jobs(tmp_path / "features", jobs)
    assert not jobs[0].extractor.built


@pytest.mark.slow
def test_a_track_that_crashes_its_decoding_worker_is_reported(tmp_path, tiny_tracks, monkeypatch):
    from music_genre.infra.parallel import CRASH_KEYS_ENV

    monkeypatch.setenv(CRASH_KEYS_ENV, "900001")
    tracks = tiny_tracks.iloc[:3]
    params = _params(
        audio={"duration_s": 3.5, "pad_mode": "repeat", "workers": 2},
        experiments=[{"backbone": "musicnn", "cut_level": "penultimate", "pca_variances": [0.9]}],
    )
    jobs = plan_transfer_features(tracks, {}, params)
    save_jobs(tmp_path / "features", jobs)
    state = json.loads(
        (tmp_path / "features" / "musicnn__msd__audio-3.5s-repeat" / "state.json").read_text()
    )
    assert state["failures"] == {"900001": "worker crashed (signal SIGSEGV)"}
    assert sorted(state["items"]) == ["900000", "900002"]


def test_prediction_refuses_features_from_other_weights():
    bundle = {
        "backbone": "musicnn",
        "cut_level": "penultimate",
        "weights": "msd",
        "weights_fingerprint": "mtt",
        "random_seed": None,
        "input_kind": "audio",
        "audio_duration_s": 3.5,
        "class_names": GENRES,
        "model": None,
    }
    predictor = TransferPredictor(bundle=bundle, spectrogram_settings={"duration_s": 29.7})
    with pytest.raises(Exception, match="retrain the transfer pipeline"):
        predictor.extractor()


def test_unknown_musicnn_cut_level_is_a_clear_error():
    with pytest.raises(ValueError, match="fc2"):
        AudioEmbeddingExtractor(
            get_backbone("musicnn"), resolve_weights("msd", "musicnn"), ("fc2",), AudioWindow()
        )
