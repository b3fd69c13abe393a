"""The library's per-file work (inference pipeline): in the workers, decoding and the model's
front end (spectrogram windows, handcrafted features, the audio backbone's input); on the
driver, the networks, one call per chunk of files (:func:`window_probabilities`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from music_genre.models.probabilities import classifier_probabilities
from music_genre.serving import (
    CnnPredictor,
    FusionPredictor,
    HandcraftedPredictor,
    PredictionError,
    Predictor,
    TransferPredictor,
    check_audio_file,
    window_offsets,
)


# --- the work in the workers: decode + front end ------------------------------------------
@dataclass(frozen=True)
class _NetworkFront:
    """CNN / handcrafted MLP: the predictor without its network (window_inputs needs only the
    spectrogram or feature settings and the scaler)."""

    predictor: Any

    def inputs(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        return self.predictor.window_inputs(path, offsets)


@dataclass(frozen=True)
class _AudioBackboneFront:
    """A backbone with its own audio front end (musicnn): decode each window, front end."""

    function: Callable[..., Any]
    leading: tuple
    sample_rate: int
    duration_s: float

    def inputs(self, path: str, offsets: Sequence[float]) -> list[Any]:
        return [
            self.function(*self.leading, path, self.sample_rate, self.duration_s, offset)
            for offset in offsets
        ]


@dataclass(frozen=True)
class _SpectrogramFront:
    """A backbone reading spectrograms (VGG16, ResNet50): one log-mel spectrogram per window."""

    settings: Mapping[str, Any]

    def inputs(self, path: str, offsets: Sequence[float]) -> list[np.ndarray]:
        from music_genre.audio.spectrograms import spectrogram_from_file

        return [spectrogram_from_file(path, {**self.settings, "offset_s": o}) for o in offsets]


@dataclass(frozen=True)
class _FusionFront:
    members: tuple

    def inputs(self, path: str, offsets: Sequence[float]) -> tuple:
        return tuple(member.inputs(path, offsets) for member in self.members)


def prepare_front_end(predictor: Predictor) -> Any:
    """What a worker needs to turn a file into the network's inputs (picklable and small: no
    network, no weights)."""
    if isinstance(predictor, FusionPredictor):
        return _FusionFront(tuple(prepare_front_end(m) for m in predictor.members))
    if isinstance(predictor, CnnPredictor | HandcraftedPredictor):
        return _NetworkFront(replace(predictor, model=None))
    if isinstance(predictor, TransferPredictor):
        extractor = predictor.extractor()  # built here once: checks the weights' fingerprint
        if predictor.reads_audio:
            function, leading = extractor.front_end_task()
            return _AudioBackboneFront(function, leading, *extractor.signal_settings)
        return _SpectrogramFront(dict(predictor.spectrogram_settings))
    raise TypeError(f"no batch front end for {type(predictor).__name__}")


@dataclass
class FileInputs:
    """What a worker returns for one file: the network inputs of its windows, or the error."""

    windows: int = 0
    inputs: Any = None
    error: str = ""


def file_inputs(
    front: Any, window_s: float, path: str, min_seconds: float, max_windows: int
) -> FileInputs:
    """One file checked (as ``genre-predict`` checks it) and turned into network inputs; never
    raises for a bad file (the error names the file and why)."""
    try:
        duration = check_audio_file(path, min_seconds)
        offsets = window_offsets(duration, window_s, max_windows)
        return FileInputs(windows=len(offsets), inputs=front.inputs(path, offsets))
    except PredictionError as exc:
        return FileInputs(error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop a batch
        return FileInputs(error=f"{path}: {type(exc).__name__}: {exc}")


# --- the work on the driver: the networks, one call per chunk -----------------------------
def _split(values: np.ndarray, counts: Sequence[int]) -> list[np.ndarray]:
    return np.split(np.asarray(values, np.float64), np.cumsum(counts)[:-1])


def window_probabilities(
    predictor: Predictor, inputs: Sequence[Any], windows: Sequence[int]
) -> list[np.ndarray]:
    """Per file, one probability row per window, from the inputs :func:`file_inputs` made for
    several files (one network call for all of them)."""
    if not inputs:
        return []
    if isinstance(predictor, FusionPredictor):
        from music_genre.models.fusion import fused_probabilities

        per_member = [
            window_probabilities(member, [item[i] for item in inputs], windows)
            for i, member in enumerate(predictor.members)
        ]
        return [
            fused_probabilities(predictor.bundle, [member[f] for member in per_member])
            for f in range(len(inputs))
        ]
    if isinstance(predictor, CnnPredictor | HandcraftedPredictor):
        arrays = [np.asarray(item) for item in inputs]
        rows = _split(predictor.probabilities(np.concatenate(arrays)), [len(a) for a in arrays])
        # a whole-track handcrafted model computes one row over the file: repeated per window,
        # as HandcraftedPredictor.window_probabilities does (fusion needs one per window)
        return [
            r if len(r) == n else np.repeat(r[:1], n, axis=0)
            for r, n in zip(rows, windows, strict=True)
        ]
    if isinstance(predictor, TransferPredictor):
        flat = [window for item in inputs for window in item]
        cut = predictor.bundle["cut_level"]
        extractor = predictor.extractor()
        if predictor.reads_audio:
            features = np.stack([row[cut] for row in extractor.embed_front_ends(flat)])
        else:
            features = extractor(flat)[cut]
        probabilities = classifier_probabilities(predictor.bundle["model"], features)
        return _split(probabilities, [len(item) for item in inputs])
    raise TypeError(f"no batch prediction for {type(predictor).__name__}")
