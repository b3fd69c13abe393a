"""Genre prediction for any audio file, with exactly the preprocessing each model trained on.

A predictor turns one file into genre probabilities. Files longer than two analysis windows are
cut into consecutive windows (at most ``max_windows``, evenly spread) whose probabilities are
averaged; shorter files use the first window, which is exactly what training saw (the same
functions compute it). Clips shorter than a window but at least ``min_seconds`` long are padded
as the spectrogram pipeline pads them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from music_genre.audio import AudioDecodeError, probe_audio
from music_genre.audio_location import is_url, local_path
from music_genre.inference import OnnxModel, as_network

logger = logging.getLogger(__name__)

MODEL_KINDS = ("handcrafted", "cnn", "transfer")
MODEL_REPEATS = 5  # further network calls timed per file for the warm model-only figure
FUSION = "fusion"  # combines the three; chosen only on request (its weights were fit on validation)


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

    return model if isinstance(model, OnnxModel) else pickle.dumps(model)


def _unpickled_model(state: Any) -> Any:
    # A Keras model is unpickled after the module that registers the CNN's custom layers: a
    # pickled model alone cannot be loaded without it.
    if not isinstance(state, bytes):
        return state
    import pickle

    import music_genre.cnn_model  # noqa: F401 - registers StudyImageScaling

    return pickle.loads(state)  # noqa: S301


class _NetworkPredictor:
    """What the CNN and MLP predictors share: ``model`` (the exported network,
    :class:`music_genre.inference.OnnxModel`, or the Keras model run as one compiled call)
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

    ``model``: the exported model (:class:`music_genre.inference.OnnxModel`, no TensorFlow)
    or the Keras model (run as one compiled call)."""

    model: Any
    class_names: list[str]
    spectrogram_settings: Mapping[str, Any]
    label: str = "cnn"
    _network: Any = field(default=None, init=False, repr=False)

    def window_s(self) -> float:
        return float(self.spectrogram_settings["duration_s"])

    def spectrograms(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        from music_genre.spectrograms import spectrogram_from_file

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
class TransferPredictor:
    """Spectrogram -> backbone cut-level features -> the fitted scaler/PCA/classifier.

    A backbone with its own audio front end (musicnn, ``input_kind: audio`` in the bundle)
    embeds each window of the audio file directly, with the window length and padding the
    training features used."""

    bundle: Mapping[str, Any]
    spectrogram_settings: Mapping[str, Any]
    label: str = "transfer"
    # The ONNX export of the backbone's cut-level network (music_genre.backbones.
    # export_cut_network): used when it records this bundle's backbone, weights and cut level,
    # else refused (logged) and the Keras backbone is built.
    backbone: Any = None
    _extractor: Any = field(default=None, init=False, repr=False)

    @property
    def class_names(self) -> list[str]:
        return list(self.bundle["class_names"])

    @property
    def reads_audio(self) -> bool:
        return self.bundle.get("input_kind", "spectrogram") == "audio"

    def window_s(self) -> float:
        if self.reads_audio:
            return float(self.bundle["audio_duration_s"])
        return float(self.spectrogram_settings["duration_s"])

    @property
    def runtime(self) -> str:
        return "keras" if self.exported_backbone() is None else "onnxruntime"

    def exported_backbone(self) -> Any:
        """The exported backbone when it belongs to this model, else None (the reason logged,
        once: the export is dropped)."""
        if self.backbone is None:
            return None
        from music_genre.backbones import check_exported_cut_network
        from music_genre.inference import ExportedModelError

        try:
            return check_exported_cut_network(self.backbone, self.bundle)
        except ExportedModelError as exc:
            logger.warning(
                "%s: using the Keras backbone instead (same features, TensorFlow start-up)", exc
            )
            self.backbone = None
            return None

    def extractor(self) -> Any:
        # Built on first use only: the served model pickles without the Keras backbone.
        if self._extractor is None:
            from music_genre.backbones import (
                AudioEmbeddingExtractor,
                AudioWindow,
                CutLevelFeatureExtractor,
                ImageSettings,
                WeightsChoice,
                get_backbone,
            )

            choice = WeightsChoice.from_label(
                str(self.bundle["weights"]), seed=self.bundle["random_seed"]
            )
            if choice.fingerprint() != self.bundle["weights_fingerprint"]:
                raise PredictionError(
                    f"the {self.bundle['backbone']} weights now resolve to "
                    f"{choice.fingerprint()}, but the classifier was trained on features of "
                    f"{self.bundle['weights_fingerprint']}: retrain the transfer pipeline"
                )
            spec = get_backbone(self.bundle["backbone"])
            if self.reads_audio:
                self._extractor = AudioEmbeddingExtractor(
                    spec,
                    choice,
                    (self.bundle["cut_level"],),
                    AudioWindow(
                        duration_s=float(self.bundle["audio_duration_s"]),
                        pad_mode=str(self.bundle.get("audio_pad_mode") or "repeat"),
                    ),
                    network=self.exported_backbone(),
                )
            else:
                self._extractor = CutLevelFeatureExtractor(
                    spec,
                    choice,
                    (self.bundle["cut_level"],),
                    ImageSettings(interpolation=self.bundle["image_interpolation"]),
                    network=self.exported_backbone(),
                )
        return self._extractor

    def features(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        """The backbone features of each window, computed as the training features were."""
        from music_genre.spectrograms import spectrogram_from_file

        if self.reads_audio:
            return self.extractor()(path, offsets)[self.bundle["cut_level"]]
        specs = [
            spectrogram_from_file(path, {**self.spectrogram_settings, "offset_s": offset})
            for offset in offsets
        ]
        return self.extractor()(specs)[self.bundle["cut_level"]]

    def window_probabilities(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        return classifier_probabilities(self.bundle["model"], self.features(path, offsets))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_extractor"] = None
        return state


def classifier_probabilities(model: Any, features: np.ndarray) -> np.ndarray:
    """predict_proba where the classifier has it; otherwise a softmax over decision scores
    (SVMs fitted without Platt scaling), which ranks genres the same way the classifier does."""
    if hasattr(model, "predict_proba"):
        try:
            return np.asarray(model.predict_proba(features), dtype=np.float64)
        except AttributeError:
            pass
    scores = np.asarray(model.decision_function(features), dtype=np.float64)
    if scores.ndim == 1:  # two classes: one signed score, positive for the second class
        scores = np.column_stack([-scores, scores])
    scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    return scores / scores.sum(axis=1, keepdims=True)


@dataclass
class HandcraftedPredictor(_NetworkPredictor):
    """FMA's 518 features of the file -> the training-split scaler -> the MLP (exported or
    Keras, as CnnPredictor's ``model``).

    ``audio``: what the model's training features were computed over (a feature audio record
    of :mod:`music_genre.training_audio`); the features of a file are computed over the same
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
        from music_genre.training_audio import WHOLE_FILE

        return str((self.audio or {}).get("features_over") or WHOLE_FILE)

    def window_s(self) -> float:
        """The length of one analysis window: infinite for a whole-track model (its features
        describe a whole track: never cut), else the length its training features saw."""
        from music_genre.training_audio import DEFAULT_CLIP_S, WHOLE_TRACK, WINDOW

        audio = self.audio or {}
        if self.features_over == WHOLE_TRACK:
            return math.inf
        if self.features_over == WINDOW and audio.get("duration_s"):
            return float(audio["duration_s"])
        return float(audio.get("median_training_s") or DEFAULT_CLIP_S)

    def _settings(self, offsets: Sequence[float], offset: float) -> dict[str, Any]:
        from music_genre.training_audio import WHOLE_TRACK

        settings = dict(self.feature_settings)
        if self.features_over == WHOLE_TRACK:
            settings.update(offset_s=0.0, duration_s=None)  # as FMA: the whole track
        elif len(offsets) > 1:
            settings.update(offset_s=offset, duration_s=self.window_s())
        return settings

    def window_inputs(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        """What the MLP reads: the features of each window (one, the whole file, for a
        whole-track model), scaled as in training."""
        from music_genre.features import extract_features
        from music_genre.training_audio import WHOLE_TRACK

        if self.features_over == WHOLE_TRACK:
            offsets = [0.0]
        rows = [extract_features(path, self._settings(offsets, o)).to_numpy() for o in offsets]
        values = np.stack(rows)
        # the scaler was fitted on the named feature table: same columns, same order
        names = getattr(self.scaler, "feature_names_in_", None)
        if names is not None and len(names) == values.shape[1]:
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
        from music_genre.training_audio import WHOLE_TRACK, describe_record, feature_audio_record

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
        from music_genre.training_audio import WHOLE_TRACK, WHOLE_TRACK_MIN_S

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


@dataclass
class FusionPredictor:
    """The fusion pipeline's combiner over its member predictors: every member predicts the
    same windows (spaced by the longest member window), then the weights or the stacker
    combine their probabilities per window."""

    bundle: Mapping[str, Any]
    members: list[Any]
    label: str = FUSION

    @property
    def class_names(self) -> list[str]:
        return list(self.bundle["class_names"])

    def window_s(self) -> float:
        # a whole-track member (infinite window) computes over the whole file whatever the
        # windows: the others' windows decide
        finite = [m.window_s() for m in self.members if math.isfinite(m.window_s())]
        return max(finite) if finite else math.inf

    def _handcrafted(self) -> HandcraftedPredictor | None:
        return next((m for m in self.members if isinstance(m, HandcraftedPredictor)), None)

    def input_description(self, duration_s: float, windows: int) -> str | None:
        member = self._handcrafted()
        if member is None:
            return None
        return f"handcrafted member: {member.input_description(duration_s, windows)}"

    def audio_warning(self, duration_s: float) -> str | None:
        member = self._handcrafted()
        return None if member is None else member.audio_warning(duration_s)

    def window_probabilities(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        from music_genre.fusion import fused_probabilities

        return fused_probabilities(
            self.bundle, [m.window_probabilities(path, offsets) for m in self.members]
        )


Predictor = CnnPredictor | TransferPredictor | HandcraftedPredictor | FusionPredictor


def handcrafted_training_audio(predictor: Predictor) -> str | None:
    """What the predictor's handcrafted model (alone or a fusion member) was trained on."""
    from music_genre.training_audio import describe_record, feature_audio_record

    if isinstance(predictor, FusionPredictor):
        member = predictor._handcrafted()
        return None if member is None else handcrafted_training_audio(member)
    if isinstance(predictor, HandcraftedPredictor):
        return describe_record(
            predictor.audio or feature_audio_record("extract", predictor.feature_settings)
        )
    return None


@dataclass
class GenrePrediction:
    path: str
    model: str
    probabilities: dict[str, float] = field(default_factory=dict)
    windows: int = 0
    error: str | None = None
    runtime: str | None = None
    timing: dict[str, float] = field(default_factory=dict)
    # what the features were computed over (handcrafted models, fusion with one), and a
    # warning when that is another kind of audio than the model's training features
    features_computed_over: str | None = None
    warning: str | None = None

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    def as_dict(self, k: int = 3) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "model": self.model}
        if self.error:
            out["error"] = self.error
        else:
            out["top"] = [{"genre": g, "probability": round(p, 4)} for g, p in self.top(k)]
            out["windows"] = self.windows
        if self.features_computed_over:
            out["features_computed_over"] = self.features_computed_over
        if self.warning:
            out["warning"] = self.warning
        if self.runtime:
            out["runtime"] = self.runtime
        if self.timing:
            out["timing"] = {name: round(ms, 2) for name, ms in self.timing.items()}
        return out


def _ms(seconds: float) -> float:
    return 1000.0 * seconds


def predict_file(
    predictor: Predictor,
    path: str | Path,
    min_seconds: float = 3.0,
    max_windows: int = 10,
    model_repeats: int = 0,
) -> GenrePrediction:
    """Classify one file; never raises for a bad file (the error is in the result).

    ``timing`` (milliseconds): ``end_to_end_ms`` from the file (probe, decode, spectrogram or
    features, model); for the CNN and handcrafted models also ``inputs_ms`` (decode +
    spectrogram/features) and ``model_ms`` (the network alone on them, this call), and with
    ``model_repeats`` > 0 ``model_repeat_ms``: the median of that many further network calls
    on the same inputs (warm: the study's Table 3 measure)."""
    result = GenrePrediction(path=str(path), model=predictor.label)
    started = time.perf_counter()
    try:
        duration = check_audio_file(path, min_seconds)
        offsets = window_offsets(duration, predictor.window_s(), max_windows)
        if hasattr(predictor, "input_description"):
            windows = 1 if math.isinf(predictor.window_s()) else len(offsets)
            result.features_computed_over = predictor.input_description(duration, windows)
            result.warning = predictor.audio_warning(duration)
            if result.warning:
                logger.warning("%s: %s", path, result.warning)
        if hasattr(predictor, "window_inputs"):
            inputs = predictor.window_inputs(str(path), offsets)
            inputs_done = time.perf_counter()
            per_window = predictor.probabilities(inputs)
            model_done = time.perf_counter()
            result.timing = {
                "inputs_ms": _ms(inputs_done - started),
                "model_ms": _ms(model_done - inputs_done),
                "end_to_end_ms": _ms(model_done - started),
            }
            repeats = []
            for _ in range(model_repeats):
                begin = time.perf_counter()
                predictor.probabilities(inputs)
                repeats.append(time.perf_counter() - begin)
            if repeats:
                result.timing["model_repeat_ms"] = _ms(float(np.median(repeats)))
        else:
            per_window = predictor.window_probabilities(str(path), offsets)
            result.timing = {"end_to_end_ms": _ms(time.perf_counter() - started)}
    except PredictionError as exc:
        result.error = str(exc)
        return result
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop a batch
        result.error = f"{path}: {type(exc).__name__}: {exc}"
        return result
    mean = per_window.mean(axis=0)
    result.probabilities = {
        name: float(p) for name, p in zip(predictor.class_names, mean, strict=True)
    }
    result.windows = len(offsets)
    result.runtime = getattr(predictor, "runtime", None)
    return result


def best_model_kind(results: Mapping[str, pd.DataFrame | None]) -> str:
    """The pipeline whose best model (:mod:`music_genre.selection`) has the highest held-out
    accuracy (validation for the Keras models, cross-validation for transfer; a tie goes to the
    first in MODEL_KINDS): test accuracy never chooses."""
    from music_genre.selection import BEST_MODEL_RULES, best_row
    from music_genre.training_audio import selectable

    scores = {}
    for name, rule in BEST_MODEL_RULES.items():
        kind = name.removesuffix("_results")
        table = results.get(kind) if kind in MODEL_KINDS else None
        best = None if table is None else best_row(selectable(table), rule)
        if best is not None:  # each pipeline's best model, as the summary and the nodes
            scores[kind] = float(best[rule.select_by])
    if not scores:
        raise PredictionError("no trained model found: run `make run` (demo) or `kedro run` first")
    return max(scores, key=lambda kind: (scores[kind], -MODEL_KINDS.index(kind)))


def load_network(load: Any, name: str, exported: bool = True) -> Any:
    """The exported model ``<name>_onnx`` (run without TensorFlow) when ``exported`` and it is
    valid, else the Keras model ``name``: the same trained model either way."""
    if exported:
        try:
            return load(f"{name}_onnx")
        except Exception as exc:  # noqa: BLE001 - the reason is logged, the Keras model is used
            logger.warning(
                "%s: using the Keras model %s instead (same predictions, TensorFlow start-up)",
                exc,
                name,
            )
    return load(name)


def load_exported_backbone(load: Any) -> Any:
    """The transfer backbone's export ``transfer_best_backbone``, or None (the reason logged):
    TransferPredictor then builds the Keras backbone."""
    try:
        return load("transfer_best_backbone")
    except Exception as exc:  # noqa: BLE001 - the reason is logged, the Keras backbone is used
        logger.warning(
            "%s: using the Keras backbone instead (same features, TensorFlow start-up)", exc
        )
        return None


def handcrafted_audio(
    load: Any, handcrafted_params: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The saved handcrafted model's record (``handcrafted_model_info``; None for a model saved
    before it existed) and its feature audio record: the recorded one, or for an older model the
    one its ``handcrafted.source`` implies (the first when it lists several)."""
    from music_genre.training_audio import feature_audio_record, handcrafted_sources

    try:
        info = load("handcrafted_model_info")
    except Exception as exc:  # noqa: BLE001 - an older project without the entry
        logger.info("no handcrafted model record (%s): handcrafted.source decides", exc)
        info = None
    if info and info.get("features_over"):
        return info, dict(info)
    source = handcrafted_sources(handcrafted_params)[0]
    audio = feature_audio_record(source, handcrafted_params.get("extraction"))
    logger.info(
        "the handcrafted model has no record of its training audio (saved before it was "
        "recorded): treated as handcrafted.source=%s implies (%s)",
        source,
        audio["features_over"],
    )
    return info, audio


def build_predictor(
    kind: str, load: Any, params: Mapping[str, Any], exported: bool = True
) -> Predictor:
    """A predictor of ``kind`` from trained artifacts; ``load(name)`` reads a catalog entry.
    ``exported``: run the CNN and the MLP from their ONNX exports where valid."""
    from music_genre.spectrograms import spectrogram_settings

    if kind == "cnn":
        info = load("cnn_best_model_info")
        return CnnPredictor(
            model=load_network(load, "cnn_best_model", exported),
            class_names=list(info["class_names"]),
            spectrogram_settings=spectrogram_settings(params["spectrogram"]),
            label=f"cnn ({info.get('variant', 'best variant')})",
        )
    if kind == "transfer":
        bundle = load("transfer_best_model")
        return TransferPredictor(
            bundle=bundle,
            backbone=load_exported_backbone(load) if exported else None,
            spectrogram_settings=spectrogram_settings(params["spectrogram"]),
            label=f"transfer ({bundle['backbone']} {bundle['cut_level']} "
            f"{bundle['classifier']}, {bundle['weights']} weights)",
        )
    if kind == "handcrafted":
        info, audio = handcrafted_audio(load, params["handcrafted"])
        settings = {**params["handcrafted"]["extraction"], **audio.get("settings", {})}
        names = (info or {}).get("class_names") or sorted(load("tracks")["genre"].unique())
        return HandcraftedPredictor(
            model=load_network(load, "handcrafted_mlp", exported),
            scaler=load("handcrafted_scaler"),
            class_names=list(names),
            feature_settings=settings,
            audio=audio,
        )
    if kind == FUSION:
        bundle = load("fusion_model")
        members = [build_predictor(member, load, params, exported) for member in bundle["members"]]
        recorded = bundle.get("member_audio", {}).get("handcrafted")
        for member in members:
            if (
                isinstance(member, HandcraftedPredictor)
                and recorded
                and recorded.get("features_over") != member.features_over
            ):
                raise PredictionError(
                    f"fusion: its handcrafted member was fit with features over "
                    f"{recorded.get('features_over')}, the saved handcrafted model's are over "
                    f"{member.features_over}: run the fusion pipeline again"
                )
            if list(member.class_names) != list(bundle["class_names"]):
                raise PredictionError(
                    f"fusion: {member.label} predicts {member.class_names}, the fusion model "
                    f"was fit on {bundle['class_names']}: run the fusion pipeline again"
                )
        return FusionPredictor(
            bundle=bundle,
            members=members,
            label=f"fusion ({bundle['method']} of {'+'.join(bundle['members'])})",
        )
    raise PredictionError(f"unknown model {kind!r}: use one of {MODEL_KINDS}, {FUSION} or best")


def export_transfer_backbone(bundle: Mapping[str, Any]) -> OnnxModel:
    """The cut-level network a transfer model's features come from (its backbone, weights and
    cut level), exported to ONNX and checked against Keras; ExportedModelError when the
    weights no longer resolve to those the classifier was trained on, or the export does not
    match."""
    from music_genre.backbones import WeightsChoice, export_cut_network, get_backbone
    from music_genre.inference import ExportedModelError

    choice = WeightsChoice.from_label(str(bundle["weights"]), seed=bundle["random_seed"])
    if choice.fingerprint() != bundle["weights_fingerprint"]:
        raise ExportedModelError(
            f"the {bundle['backbone']} weights now resolve to {choice.fingerprint()}, but the "
            f"classifier was trained on features of {bundle['weights_fingerprint']}: not exported"
        )
    return export_cut_network(get_backbone(bundle["backbone"]), choice, bundle["cut_level"])


def export_networks(predictor: Predictor) -> Predictor:
    """The predictor with its Keras networks (CNN, MLP, the transfer backbone's cut level;
    fusion members too) replaced by their ONNX exports, each checked against the Keras model
    (music_genre.inference.export_onnx): the served model then runs without TensorFlow. A
    network whose export does not match stays Keras, with a logged warning."""
    from music_genre.inference import ExportedModelError, export_onnx

    if isinstance(predictor, FusionPredictor):
        predictor.members = [export_networks(member) for member in predictor.members]
    elif isinstance(predictor, TransferPredictor) and predictor.backbone is None:
        try:
            predictor.backbone = export_transfer_backbone(predictor.bundle)
        except ExportedModelError as exc:
            logger.warning(
                "%s: %s keeps its Keras backbone (slower start-up)", exc, predictor.label
            )
        predictor._extractor = None
    elif isinstance(predictor, CnnPredictor | HandcraftedPredictor) and not isinstance(
        predictor.model, OnnxModel
    ):
        try:
            predictor.model = export_onnx(predictor.model)
        except ExportedModelError as exc:
            logger.warning("%s: %s keeps its Keras model (slower start-up)", exc, predictor.label)
        predictor._network = None
    return predictor


def predictions_frame(
    predictions: Sequence[GenrePrediction], class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per file: path, genre (top-1), one probability column per genre, error."""
    rows = []
    for p in predictions:
        row = {"path": p.path, "genre": p.top(1)[0][0] if p.probabilities else None}
        # None, not NaN, for a file without probabilities: strict JSON has no NaN
        row.update({name: p.probabilities.get(name) for name in class_names})
        row["error"] = p.error or ""
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["path", "genre", *class_names, "error"], dtype=object)
    return (
        frame.astype({name: "float64" for name in class_names})
        if all(p.probabilities for p in predictions)
        else frame
    )


def __getattr__(name: str) -> Any:
    # GenrePredictorModel lives in music_genre.served_model (importing MLflow takes seconds);
    # served models pickled before it moved name it here.
    if name == "GenrePredictorModel":
        from music_genre.served_model import GenrePredictorModel

        return GenrePredictorModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
