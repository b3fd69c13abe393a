"""Inference nodes: the library's predictions, resumable, then the same table as CSV."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from music_genre.config import InferenceParams, node_settings

from .library import LibraryChunk, LibraryRun, csv_table, load_predictor, predict_library

logger = logging.getLogger(__name__)


def predict_music_library(
    model_artifacts: Callable[[str], Any],
    stored: pd.DataFrame | None,
    inference_params: dict[str, Any] | InferenceParams,
    spectrogram_params: dict[str, Any],
    handcrafted_params: dict[str, Any],
) -> Iterator[LibraryChunk]:
    """Every audio file below ``inference.folder``: the stored rows that stay valid first, then
    one chunk of new rows at a time (the dataset writes each atomically: an interrupted run
    loses at most one chunk). ``model_artifacts``: loads a catalog entry by name (only the
    chosen model's entries are read, as genre-predict reads them)."""
    settings = node_settings(InferenceParams, inference_params)
    predictor, label = load_predictor(
        settings.model,
        model_artifacts,
        {"spectrogram": spectrogram_params, "handcrafted": handcrafted_params},
        runtime=settings.runtime,
        run_id=settings.run_id,
    )
    summary = LibraryRun()
    yield from predict_library(
        predictor,
        label,
        settings.folder,
        stored,
        workers=settings.workers,
        min_seconds=settings.min_seconds,
        max_windows=settings.max_windows,
        chunk_size=settings.chunk_size,
        progress=settings.progress,
        summary=summary,
    )
    logger.info(
        "Library predictions: %d file(s), %d kept from the stored table, %d predicted (%d with "
        "an error)",
        summary.files,
        summary.reused,
        summary.predicted,
        summary.errors,
    )


def library_predictions_csv(library_predictions: pd.DataFrame) -> pd.DataFrame:
    """The finished table, for the CSV next to the parquet."""
    return csv_table(library_predictions)
