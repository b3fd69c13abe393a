"""A handcrafted model never meets the other kind of audio silently (issue #26).

FMA's features.csv was computed over full-length tracks, fma_small's files are 30-s clips: the
features of a track and of its clip differ, a model records which kind it was trained on, and
prediction computes the features over the same kind of audio, says so, and warns when it cannot.
Generated audio: a 65-s "track" whose first 30 s are its "clip".
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from music_genre.audio.features import FMA_SETTINGS, extract_features
from music_genre.audio.training_audio import WHOLE_FILE, WHOLE_TRACK, feature_audio_record
from music_genre.commands import predict as predict_cli
from music_genre.contracts import FUSION
from music_genre.serving import (
    HandcraftedPredictor,
    PredictionError,
    build_predictor,
    handcrafted_audio,
    predict_file,
)

SR = 22050
GENRES = ["Folk", "Pop", "Rock"]
SETTINGS = {**FMA_SETTINGS, "workers": 1, "save_every": 16}


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> dict[str, Path]:
    """A track that changes after its first 30 s (a quiet tone, then a brighter, noisier
    part), and its first 30 s as a clip file: the same samples."""
    root = tmp_path_factory.mktemp("feature_audio")
    rng = np.random.default_rng(26)
    t = np.arange(65 * SR) / SR
    track = 0.3 * np.sin(2 * np.pi * 220 * t)
    later = t >= 30
    track[later] = 0.2 * np.sin(2 * np.pi * 1760 * t[later]) + 0.2 * rng.standard_normal(
        later.sum()
    )
    track = track.astype(np.float32)
    sf.write(root / "track.wav", track, SR)
    sf.write(root / "clip.wav", track[: 30 * SR], SR)
    return {"track": root / "track.wav", "clip": root / "clip.wav"}


@pytest.fixture(scope="module")
def features(audio) -> dict[str, pd.Series]:
    return {name: extract_features(str(path), SETTINGS) for name, path in audio.items()}


class _RecordingScaler:
    """Hands the features over unchanged and keeps them, to see what was computed."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def transform(self, values):
        values = np.asarray(values, dtype=np.float64)
        self.seen.append(values)
        return values


class _UniformNetwork:
    runtime = "test"

    def __call__(self, x):
        return np.full((len(x), len(GENRES)), 1.0 / len(GENRES))


def _predictor(record) -> HandcraftedPredictor:
    predictor = HandcraftedPredictor(
        model=None,
        scaler=_RecordingScaler(),
        class_names=GENRES,
        feature_settings=SETTINGS,
        audio=record,
    )
    predictor._network = _UniformNetwork()
    return predictor


def _close(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b) <= 0.01 + 0.02 * np.abs(b)


def test_a_track_and_its_clip_give_different_features(features):
    track, clip = features["track"], features["clip"]
    assert track.index.equals(clip.index)
    # most values differ beyond 0.01 + 2 % (FMA's track 2 vs its clip: 90 of 350 agreed)
    assert _close(track, clip).mean() < 0.5
    centroid = ("spectral_centroid", "max", "01")
    assert track[centroid] > 1.5 * clip[centroid]  # the brighter part is outside the clip


def test_a_whole_track_model_computes_over_the_whole_file(audio, features):
    predictor = _predictor(feature_audio_record("fma_csv", SETTINGS))
    result = predict_file(predictor, audio["track"], max_windows=10)
    assert result.error is None and result.warning is None
    assert result.windows == 1  # a whole track is never cut into clip windows
    (seen,) = predictor.scaler.seen
    np.testing.assert_allclose(seen[0], features["track"].to_numpy(), rtol=1e-5, atol=1e-5)
    assert "the whole file (65.0 s)" in result.features_computed_over
    assert "full-length tracks" in result.features_computed_over


def test_a_whole_track_model_is_not_silently_fed_a_clip(audio, features, caplog):
    predictor = _predictor(feature_audio_record("fma_csv", SETTINGS))
    with caplog.at_level(logging.WARNING, logger="music_genre.serving"):
        result = predict_file(predictor, audio["clip"])
    assert result.probabilities  # still classified, but never silently
    assert "likely a clip" in result.warning and "full-length tracks" in result.warning
    assert "likely a clip" in caplog.text
    assert result.as_dict()["warning"] == result.warning
    assert "the whole file (30.0 s)" in result.as_dict()["features_computed_over"]


def test_a_clip_model_reads_a_track_in_clip_windows(audio, features):
    predictor = _predictor(feature_audio_record("extract", SETTINGS, [30.0, 29.9, 30.0]))
    result = predict_file(predictor, audio["track"], max_windows=10)
    assert result.warning is None and result.windows == 2
    (seen,) = predictor.scaler.seen
    # the first 30-s window of the track is exactly its clip
    np.testing.assert_allclose(seen[0], features["clip"].to_numpy(), rtol=1e-4, atol=1e-4)
    assert "2 windows of 30.00 s" in result.features_computed_over
    assert "each whole file of the collection" in result.features_computed_over


def test_models_saved_without_a_record_follow_their_source_parameter():
    def load(name):
        raise KeyError(name)  # an older project: no handcrafted_model_info

    info, record = handcrafted_audio(load, {"source": "fma_csv", "extraction": SETTINGS})
    assert info is None and record["features_over"] == WHOLE_TRACK
    _, record = handcrafted_audio(
        {"handcrafted_model_info": None}.__getitem__,
        {"source": ["extract", "fma_csv"], "extraction": SETTINGS},
    )
    assert record["features_over"] == WHOLE_FILE
    assert _predictor(record).window_s() == 30.0  # as before the record existed


def test_genre_predict_json_reports_what_the_features_were_computed_over(
    audio, monkeypatch, capsys
):
    predictor = _predictor(feature_audio_record("fma_csv", SETTINGS))

    class Catalog:
        def load(self, name):
            raise AssertionError(f"--model handcrafted must not read {name} here")

    class Context:
        catalog = Catalog()
        params: dict = {}

    monkeypatch.setattr(predict_cli, "_kedro_context", lambda project, env: Context())
    monkeypatch.setattr(predict_cli, "build_predictor", lambda *args, **kwargs: predictor)
    code = predict_cli.main(["--model", "handcrafted", "--json", str(audio["clip"])])
    out = capsys.readouterr().out
    # the warning is also logged: after a test that configured Kedro's logging in this process
    # its handler writes to the (captured) stdout; the command's own logging goes to stderr
    (item,) = json.loads(out[out.index("[\n  {") :])
    assert code == 0
    assert "the whole file (30.0 s)" in item["features_computed_over"]
    assert "FMA's features.csv" in item["features_computed_over"]
    assert "likely a clip" in item["warning"]


def test_a_fusion_model_refuses_a_handcrafted_member_of_another_kind():
    artifacts = {
        "fusion_model": {
            "members": ["handcrafted"],
            "class_names": GENRES,
            "method": "late_fusion",
            "weights": [1.0],
            "member_audio": {"handcrafted": {"source": "fma_csv", "features_over": WHOLE_TRACK}},
        },
        "handcrafted_mlp": object(),
        "handcrafted_scaler": _RecordingScaler(),
        "handcrafted_model_info": {
            **feature_audio_record("extract", SETTINGS, [30.0]),
            "class_names": GENRES,
        },
    }
    params = {"spectrogram": {}, "handcrafted": {"source": "extract", "extraction": SETTINGS}}
    with pytest.raises(PredictionError, match="run the fusion pipeline again"):
        build_predictor(FUSION, artifacts.__getitem__, params, exported=False)
    artifacts["fusion_model"]["member_audio"]["handcrafted"]["features_over"] = WHOLE_FILE
    fused = build_predictor(FUSION, artifacts.__getitem__, params, exported=False)
    assert fused.members[0].features_over == WHOLE_FILE
