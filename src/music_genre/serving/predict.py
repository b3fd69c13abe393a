"""Genre prediction of one audio file (``predict_file``) and the table of many
(``predictions_frame``); which kind of model is best (``best_model_kind``)."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # imported where used: pandas costs genre-predict 0.2 s of start-up
    import pandas as pd

from music_genre.contracts import MODEL_KINDS

from .fusion import Predictor
from .predictors import PredictionError, check_audio_file, window_offsets

logger = logging.getLogger(__name__)


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
            # every genre, unrounded: what the served model answers, for comparisons
            out["probabilities"] = dict(self.probabilities)
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
    # One BLAS/OpenMP thread, as the training pipelines computed the same inputs
    # (music_genre.infra.parallel): OpenBLAS's idle threads otherwise spin after each small
    # product and take the two cores from ONNX Runtime's (musicnn: 185 -> 141 ms a call).
    with _thread_limits().limit(limits=1):
        return _predict_file(predictor, path, min_seconds, max_windows, model_repeats)


@functools.cache
def _thread_limits() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # finding the loaded libraries once: ~10 ms


def _predict_file(
    predictor: Predictor,
    path: str | Path,
    min_seconds: float,
    max_windows: int,
    model_repeats: int,
) -> GenrePrediction:
    result = GenrePrediction(path=str(path), model=predictor.label)
    started = time.perf_counter()
    # the abilities below are optional per predictor kind, asked for with hasattr
    abilities: Any = predictor
    try:
        duration = check_audio_file(path, min_seconds)
        offsets = window_offsets(duration, predictor.window_s(), max_windows)
        if hasattr(predictor, "input_description"):
            windows = 1 if math.isinf(predictor.window_s()) else len(offsets)
            result.features_computed_over = abilities.input_description(duration, windows)
            result.warning = abilities.audio_warning(duration)
            if result.warning:
                logger.warning("%s: %s", path, result.warning)
        if hasattr(predictor, "window_inputs"):
            inputs = abilities.window_inputs(str(path), offsets)
            inputs_done = time.perf_counter()
            per_window = abilities.probabilities(inputs)
            model_done = time.perf_counter()
            result.timing = {
                "inputs_ms": _ms(inputs_done - started),
                "model_ms": _ms(model_done - inputs_done),
                "end_to_end_ms": _ms(model_done - started),
            }
            repeats = []
            for _ in range(model_repeats):
                begin = time.perf_counter()
                abilities.probabilities(inputs)
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
    """The pipeline whose best model (:mod:`music_genre.models.selection`) has the highest held-out
    accuracy (validation for the Keras models, cross-validation for transfer; a tie goes to the
    first in MODEL_KINDS): test accuracy never chooses."""
    from music_genre.contracts import BEST_MODEL_RULES
    from music_genre.models.selection import saved_model_row

    scores = {}
    for name, rule in BEST_MODEL_RULES.items():
        kind = name.removesuffix("_results")
        table = results.get(kind) if kind in MODEL_KINDS else None
        best = saved_model_row(table, rule)
        if best is not None:  # each pipeline's best model, as the summary and the nodes
            scores[kind] = float(best[rule.select_by])
    if not scores:
        raise PredictionError("no trained model found: run `make run` (demo) or `kedro run` first")
    return max(scores, key=lambda kind: (scores[kind], -MODEL_KINDS.index(kind)))


def predictions_frame(
    predictions: Sequence[GenrePrediction], class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per file: path, genre (top-1), one probability column per genre, error."""
    import pandas as pd

    rows = []
    for p in predictions:
        row: dict[str, Any] = {"path": p.path, "genre": p.top(1)[0][0] if p.probabilities else None}
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
