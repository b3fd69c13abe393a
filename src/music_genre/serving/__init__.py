"""Genre prediction for any audio file, with exactly the preprocessing each model trained on.

A predictor turns one file into genre probabilities. Files longer than two analysis windows are
cut into consecutive windows (at most ``max_windows``, evenly spread) whose probabilities are
averaged; shorter files use the first window, which is exactly what training saw (the same
functions compute it). Clips shorter than a window but at least ``min_seconds`` long are padded
as the spectrogram pipeline pads them.

The package re-exports the public names of its modules (predictors, transfer, fusion, build,
predict); :mod:`music_genre.serving.served_model` (the MLflow pyfunc model: importing MLflow
takes seconds) is imported on its own.
"""

from __future__ import annotations

from .build import (
    build_predictor,
    export_networks,
    handcrafted_audio,
    load_exported_backbone,
    load_network,
)
from .fusion import (
    FusionPredictor,
    Predictor,
    handcrafted_training_audio,
)
from .predict import (
    GenrePrediction,
    best_model_kind,
    predict_file,
    predictions_frame,
)
from .predictors import (
    MODEL_REPEATS,
    CnnPredictor,
    HandcraftedPredictor,
    PredictionError,
    check_audio_file,
    window_offsets,
)
from .transfer import (
    TransferPredictor,
)

__all__ = [
    "MODEL_REPEATS",
    "PredictionError",
    "window_offsets",
    "check_audio_file",
    "CnnPredictor",
    "HandcraftedPredictor",
    "TransferPredictor",
    "FusionPredictor",
    "Predictor",
    "handcrafted_training_audio",
    "load_network",
    "load_exported_backbone",
    "handcrafted_audio",
    "build_predictor",
    "export_networks",
    "GenrePrediction",
    "predict_file",
    "best_model_kind",
    "predictions_frame",
]
