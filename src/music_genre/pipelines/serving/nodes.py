"""Serving: the best trained model, with its preprocessing, as one MLflow pyfunc model."""

from __future__ import annotations

from typing import Any

import pandas as pd

from music_genre.contracts import METRICS
from music_genre.models.selection import saved_model_row
from music_genre.serving import (
    best_model_kind,
    build_predictor,
    export_networks,
    handcrafted_training_audio,
)
from music_genre.serving.package import log_genre_predictor
from music_genre.serving.served_model import MAX_BYTES, MAX_FILES, MAX_SECONDS, GenrePredictorModel


def package_genre_predictor(
    handcrafted_results: pd.DataFrame | None,
    cnn_results: pd.DataFrame | None,
    transfer_results: pd.DataFrame | None,
    spectrogram_params: dict[str, Any],
    handcrafted_params: dict[str, Any],
    serving_params: dict[str, Any],
    **artifacts: Any,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One run record whose model is the prediction command as a pyfunc: input a table of
    audio files' bytes (base64; server-side paths only under ``serving.allowed_roots``),
    output genre probabilities. ``mlflow models serve`` serves it.

    ``artifacts`` are the trained models under their catalog names (what build_predictor
    loads); only the chosen kind's are used. ``serving.model``: ``best`` (held-out accuracy),
    or a kind (``handcrafted``, ``cnn``, ``transfer``, ``fusion``). The CNN and MLP are
    exported to ONNX here (checked against the Keras model): the served model loads them once
    and answers without TensorFlow.

    Also returns the predictor with what it is (``genre_predictor_package``: the folder
    ``genre-predict`` reads without a Kedro session)."""
    kind = serving_params.get("model", "best")
    if kind == "best":
        kind = best_model_kind(
            {"handcrafted": handcrafted_results, "cnn": cnn_results, "transfer": transfer_results}
        )
    predictor = export_networks(
        build_predictor(
            kind,
            artifacts.__getitem__,
            {"spectrogram": spectrogram_params, "handcrafted": handcrafted_params},
            exported=False,
        )
    )
    limits = {
        "max_bytes": serving_params.get("max_bytes", MAX_BYTES),
        "max_files": serving_params.get("max_files", MAX_FILES),
        "max_seconds": serving_params.get("max_seconds", MAX_SECONDS),
    }
    allowed_roots = list(serving_params.get("allowed_roots") or [])
    model = GenrePredictorModel(
        predictor,
        min_seconds=serving_params["min_seconds"],
        max_windows=serving_params["max_windows"],
        allowed_roots=allowed_roots,
        **limits,
    )
    # what the handcrafted model (alone or as a fusion member) computed its features over
    described = handcrafted_training_audio(predictor)
    audio = {"handcrafted_training_audio": described} if described else {}
    metrics = _packaged_metrics(
        kind, {"handcrafted": handcrafted_results, "cnn": cnn_results, "transfer": transfer_results}
    )
    package = {
        "predictor": predictor,
        "about": {
            "chosen_by": serving_params.get("model", "best"),
            "model_kind": kind,
            "model": predictor.label,
            "metrics": metrics,
        },
    }
    return [
        {
            "run_name": f"genre predictor: {predictor.label}",
            "params": {
                "model_kind": kind,
                "model": predictor.label,
                "genres": ", ".join(predictor.class_names),
                "min_seconds": serving_params["min_seconds"],
                "max_windows": serving_params["max_windows"],
                "input": "table with an 'audio' column (base64 file bytes) and optional 'name'"
                + (f"; 'path' under {', '.join(allowed_roots)}" if allowed_roots else ""),
                **limits,
                **audio,
            },
            # the packaged configuration's held-out and test accuracies (docs/metrics.md)
            "metrics": metrics,
            "tags": {"served_model": "genre_predictor"},
            "model": model,
            # artifacts, signature, input example, pinned requirements, code: the model
            # serves from an environment without the project (music_genre.serving.package)
            "log_model": log_genre_predictor,
        }
    ], package


def _packaged_metrics(kind: str, results: dict[str, pd.DataFrame | None]) -> dict[str, float]:
    """The metric vocabulary's values of the configuration ``kind`` saved (the best row of its
    results table by the one selection rule); {} for fusion, whose table is not an input."""
    best = saved_model_row(results.get(kind), kind)
    if best is None:
        return {}
    return {m: float(best[m]) for m in METRICS if m in best and pd.notna(best[m])}
