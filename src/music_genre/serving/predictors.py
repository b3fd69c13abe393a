"""The network predictors (CNN, handcrafted MLP) and what they share: the windows of a file,
the checks of an audio file, pickling without the built network."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from music_genre.audio.decode import AudioDecodeError, probe_audio
from music_genre.infra.location import is_url, local_path
from music_genre.models.inference import OnnxModel, as_network

logger = logging.getLogger(__name__)

MODEL_REPEATS = 5  # further network calls timed per file for the warm model-only figure


class PredictionError(Exception):
    """One file cannot be classified; the message says which and why."""


def window_offsets(duration_s: float, window_s: float, max_windows: int) -> list[float]:
    """Start times of the analysis windows: one (the first, as in training) unless the file
    holds at least two full windows; then consecutive windows, evenly thinned to max_windows."""
    count = int(duration_s // window_s)
    if count < 2:
        return [0.0]
    starts = [i * window_s for i in range(count)]
    if count > max_windows:
        picks = np.linspace(0, count - 1, max_windows).round().astype(int)
        starts = [starts[i] for i in picks]
    return starts


def check_audio_file(path: str | Path, min_seconds: float) -> float:
    """The file's real duration, or a PredictionError saying what is wrong with it.
    ``path``: a local path or an fsspec URL (``s3://bucket/x.mp3``, kept as it is; decoding
    names a missing object)."""
    if not is_url(path):
        path = Path(local_path(path))
        if not path.exists():
            raise PredictionError(f"{path}: file not found")
        if path.is_dir():
            raise PredictionError(
                f"{path}: is a directory; pass audio files (genre-predict FOLDER --output "
                "FILE.csv predicts every audio file below it)"
            )
    try:
        duration = probe_audio(path).duration_s
    except (AudioDecodeError, OSError) as exc:
        raise PredictionError(str(exc)) from exc
    if duration < min_seconds:
        raise PredictionError(
            f"{path}: too short ({duration:.2f} s < {min_seconds:g} s); "
            "lower --min-seconds to classify it anyway"
        )
    return duration


def _pickled_model(model: Any) -> Any:
    """An exported model pickles as it is; a Keras model as its bytes (see _unpickled_model)."""
    import pickle

    # None: a packaged predictor's network lives in an artifact (music_genre.serving.package)
    return model if model is None or isinstance(model, OnnxModel) else pickle.dumps(model)


def _unpickled_model(state: Any) -> Any:
    # A Keras model is unpickled after the module that registers the CNN's custom layers: a
    # pickled model alone cannot be loaded without it.
    if not isinstance(state, bytes):
        return state
    import pickle

    import music_genre.models.cnn  # noqa: F401 - registers StudyImageScaling

    return pickle.loads(state)  # noqa: S301


class _NetworkPredictor:
    """What the CNN and MLP predictors share: ``model`` (the exported network,
    :class:`music_genre.models.inference.OnnxModel`, or the Keras model run as one compiled call)
    turned into a callable once, probabilities of ``window_inputs``, and pickling without the
    built network."""

    model: Any
    _network: Any

    @property
    def runtime(self) -> str:
        return self.network().runtime

    def network(self) -> Any:
        if self._network is None:  # built (traced, for Keras) once per predictor
            self._network = as_network(self.model)
        return self._network

    def window_inputs(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        raise NotImplementedError

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(self.network()(inputs), np.float64)

    def window_probabilities(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        return self.probabilities(self.window_inputs(path, offsets))

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "_network"}
        return {**state, "model": _pickled_model(self.model)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "model": _unpickled_model(state["model"]), "_network": None})


@dataclass
class CnnPredictor(_NetworkPredictor):
    """The CNN reads the stored log-mel spectrogram; its input scaling is inside the model.

    ``model``: the exported model (:class:`music_genre.models.inference.OnnxModel`, no TensorFlow)
    or the Keras model (run as one compiled call)."""

    model: Any
    class_names: list[str]
    spectrogram_settings: Mapping[str, Any]
    label: str = "cnn"
    _network: Any = field(default=None, init=False, repr=False)

    def window_s(self) -> float:
        return float(self.spectrogram_settings["duration_s"])

    def spectrograms(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        from music_genre.audio.spectrograms import spectrogram_from_file

        return np.stack(
            [
                spectrogram_from_file(path, {**self.spectrogram_settings, "offset_s": offset})
                for offset in offsets
            ]
        )

    def window_inputs(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        """What the network reads: one dB log-mel spectrogram per window."""
        return self.spectrograms(path, offsets)[..., None].astype(np.float32)


@dataclass
class HandcraftedPredictor(_NetworkPredictor):
    """FMA's 518 features of the file -> the training-split scaler -> the MLP (exported or
    Keras, as CnnPredictor's ``model``).

    ``audio``: what the model's training features were computed over (a feature audio record
    of :mod:`music_genre.audio.training_audio`); the features of a file are computed over the same
    kind of audio: the whole file for a whole-track model (FMA's features.csv) or a whole-file
    (clip) model, consecutive windows of the training clips' length for a file of two clips or
    more, the training window for a window model. A file that cannot match (a short clip given
    to a whole-track model) gets a warning with its prediction (:meth:`audio_warning`)."""

    model: Any
    scaler: Any
    class_names: list[str]
    feature_settings: Mapping[str, Any]
    label: str = "handcrafted"
    audio: Mapping[str, Any] | None = None
    _network: Any = field(default=None, init=False, repr=False)

    @property
    def features_over(self) -> str:
        from music_genre.audio.training_audio import WHOLE_FILE

        return str((self.audio or {}).get("features_over") or WHOLE_FILE)

    def window_s(self) -> float:
        """The length of one analysis window: infinite for a whole-track model (its features
        describe a whole track: never cut), else the length its training features saw."""
        from music_genre.audio.training_audio import DEFAULT_CLIP_S, WHOLE_TRACK, WINDOW

        audio = self.audio or {}
        if self.features_over == WHOLE_TRACK:
            return math.inf
        if self.features_over == WINDOW and audio.get("duration_s"):
            return float(audio["duration_s"])
        return float(audio.get("median_training_s") or DEFAULT_CLIP_S)

    def _settings(self, offsets: Sequence[float], offset: float) -> dict[str, Any]:
        from music_genre.audio.training_audio import WHOLE_TRACK

        settings = dict(self.feature_settings)
        if self.features_over == WHOLE_TRACK:
            settings.update(offset_s=0.0, duration_s=None)  # as FMA: the whole track
        elif len(offsets) > 1:
            settings.update(offset_s=offset, duration_s=self.window_s())
        return settings

    def window_inputs(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        """What the MLP reads: the features of each window (one, the whole file, for a
        whole-track model), scaled as in training."""
        from music_genre.audio.features import extract_features
        from music_genre.audio.training_audio import WHOLE_TRACK

        if self.features_over == WHOLE_TRACK:
            offsets = [0.0]
        rows = [extract_features(path, self._settings(offsets, o)).to_numpy() for o in offsets]
        values = np.stack(rows)
        # the scaler was fitted on the named feature table: same columns, same order
        names = getattr(self.scaler, "feature_names_in_", None)
        if names is not None and len(names) == values.shape[1]:
            import pandas as pd  # here: pandas costs genre-predict 0.2 s of start-up

            values = pd.DataFrame(values, columns=names)
        return np.asarray(self.scaler.transform(values), np.float32)

    def window_probabilities(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        """One probability row per window; a whole-track model computes one over the whole
        file and repeats it (as a fusion member, next to the other members' windows)."""
        probabilities = self.probabilities(self.window_inputs(path, offsets))
        if len(probabilities) != len(offsets):
            probabilities = np.repeat(probabilities[:1], len(offsets), axis=0)
        return probabilities

    def input_description(self, duration_s: float, windows: int) -> str:
        """What this file's features were computed over, next to what training saw."""
        from music_genre.audio.training_audio import (
            WHOLE_TRACK,
            describe_record,
            feature_audio_record,
        )

        audio = self.audio or feature_audio_record("extract", self.feature_settings)
        if self.features_over == WHOLE_TRACK or windows <= 1:
            settings = self._settings([0.0], 0.0)
            if settings.get("duration_s"):
                start = float(settings.get("offset_s") or 0.0)
                span = f"{float(settings['duration_s']):.2f} s from {start:g} s of the file"
            else:
                span = f"the whole file ({duration_s:.1f} s)"
        else:
            span = f"{windows} windows of {self.window_s():.2f} s (probabilities averaged)"
        return f"{span}; the model was trained on {describe_record(audio)}"

    def audio_warning(self, duration_s: float) -> str | None:
        """Why this file's features come from another kind of audio than the training
        features, or None: a file shorter than WHOLE_TRACK_MIN_S given to a whole-track model."""
        from music_genre.audio.training_audio import WHOLE_TRACK, WHOLE_TRACK_MIN_S

        if self.features_over == WHOLE_TRACK and duration_s < WHOLE_TRACK_MIN_S:
            return (
                f"the handcrafted model was trained on FMA's features.csv, computed over "
                f"full-length tracks, but this file lasts {duration_s:.1f} s (< "
                f"{WHOLE_TRACK_MIN_S:g} s: likely a clip): its features come from another "
                "distribution (e.g. FMA's track 2: spectral_centroid min 0 over the track, 510 "
                "over its 30-s clip), so this prediction is unreliable. Give the whole track, "
                "or train on clip features (handcrafted.source=extract)."
            )
        return None
