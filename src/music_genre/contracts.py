"""The data contract: each fact that the pipelines, the models and the served predictor share,
defined once here (issue #22).

- the track splits and the results tables' column prefix of each (``SPLITS``, ``SPLIT_PREFIX``);
- the bad-tracks report's columns (``BAD_TRACK_COLUMNS``);
- labels and genre names: label = position of the genre in the sorted genre names
  (``genre_labels``, ``class_names``);
- the model kinds the prediction command and the serving pipeline choose from (``MODEL_KINDS``,
  ``FUSION``);
- how each results table chooses its best row (``SelectionRule``, ``BEST_MODEL_RULES``; the
  ranking itself is :mod:`music_genre.models.selection`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import pandas as pd

# --- splits -----------------------------------------------------------------------------------
SPLITS = ("training", "validation", "test")
# the prefix of a split's columns in the results tables (train_acc, val_acc, test_acc)
SPLIT_PREFIX = {"training": "train", "validation": "val", "test": "test"}

# --- the bad-tracks reports (ingestion, spectrogram, handcrafted) -------------------------------
BAD_TRACK_COLUMNS = ["track_id", "path", "genre", "split", "stage", "reason"]


# --- labels -----------------------------------------------------------------------------------
def genre_labels(genres: Iterable[str]) -> dict[str, int]:
    """Genre name -> label: the position of the genre in the sorted distinct genre names."""
    return {genre: index for index, genre in enumerate(sorted(set(genres)))}


def class_names(tracks: pd.DataFrame) -> list[str]:
    """Genre name of each label 0..max of a table with ``label`` and ``genre`` columns (labels
    are the sorted genre names from ingestion, :func:`genre_labels`)."""
    names = dict(zip(tracks["label"].astype(int), tracks["genre"].astype(str), strict=True))
    return [names.get(label, f"label {label}") for label in range(max(names) + 1)]


# --- model kinds ------------------------------------------------------------------------------
MODEL_KINDS = ("handcrafted", "cnn", "transfer")
FUSION = "fusion"  # combines the three; chosen only on request (its weights were fit on validation)


# --- best-model rules -------------------------------------------------------------------------
class SelectionRule(NamedTuple):
    """How one pipeline's results table chooses its best row."""

    select_by: str  # held-out accuracy column: higher wins
    report: str  # the test accuracy column reported for the chosen row (never chooses)
    naming: tuple[str, ...]  # the columns that name a row ("(512) fma_csv")
    tie_breakers: tuple[str, ...] = ()  # lower wins, in this order, where the table has them


# results dataset -> its rule
BEST_MODEL_RULES: dict[str, SelectionRule] = {
    "handcrafted_results": SelectionRule(
        "val_acc", "test_acc", ("units", "source"), ("val_loss", "parameters")
    ),
    "cnn_results": SelectionRule("val_acc", "test_acc", ("variant",), ("val_loss", "params")),
    # no loss nor parameter count: the steadier configuration over the CV folds wins a tie
    "transfer_results": SelectionRule(
        "cv_accuracy",
        "test_accuracy",
        ("backbone", "cut_level", "pca_variance", "classifier", "weights"),
        ("cv_accuracy_std",),
    ),
    # fusion weights/stacker are fitted on validation: its val_acc is optimistic (see
    # docs/pipelines/fusion.md); its methods are listed late fusion (fewer parameters) first
    "fusion_results": SelectionRule("val_acc", "test_acc", ("method", "members")),
}
