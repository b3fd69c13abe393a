"""Inference nodes: the library's predictions, resumable, then the same table as CSV."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from .library import LibraryChunk, LibraryRun, csv_table, load_predictor, predict_library

logger = logging.getLogger(__name__)


def predict_music_library(
    model_artifacts: Callable[[str], Any],
    stored: pd.DataFrame | None,
    inference_params: dict[str, Any],
    spectrogram_params: dict[str, Any],
    handcrafted_params: dict[str, Any],
) -> Iterator[LibraryChunk]:
    """Every audio file below ``inference.folder``: the stored rows that stay valid first, then
    one chunk of new rows at a time (the dataset writes each atomically: an interrupted run
    loses at most one chunk). ``model_artifacts``: loads a catalog entry by name (only the
    chosen model's entries are read, as genre-predict reads them)."""
    predictor, label = load_predictor(
        inference_params["model"],
        model_artifacts,
        {"spectrogram": spectrogram_params, "handcrafted": handcrafted_params},
        runtime=inference_params["runtime"],
        run_id=inference_params.get("run_id"),
    )
    summary = LibraryRun()
    yield from predict_library(
        predictor,
        label,
        inference_params.get("folder"),
        stored,
        workers=inference_params.get("workers"),
        min_seconds=inference_params["min_seconds"],
        max_windows=inference_params["max_windows"],
        chunk_size=inference_params["chunk_size"],
        progress=inference_params["progress"],
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
