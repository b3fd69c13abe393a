"""The data contract: each fact that the pipelines, the models and the served predictor share,
defined once here (issue #22).

- the track splits and the results tables' column prefix of each (``SPLITS``, ``SPLIT_PREFIX``);
- the bad-tracks report's columns (``BAD_TRACK_COLUMNS``);
- labels and genre names: label = position of the genre in the sorted genre names
  (``genre_labels``, ``class_names``);
- the model kinds the prediction command and the serving pipeline choose from (``MODEL_KINDS``,
  ``FUSION``);
- the metric vocabulary of every pipeline's MLflow runs and results tables (``METRICS``,
  ``epoch_metric``; docs/metrics.md);
- how each results table chooses its best row (``SelectionRule``, ``BEST_MODEL_RULES``; the
  ranking itself is :mod:`music_genre.models.selection`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # pandas costs genre-predict 0.2 s of start-up; only the annotations use it
    import pandas as pd

# --- splits -----------------------------------------------------------------------------------
SPLITS = ("training", "validation", "test")
# the prefix of a split's columns in the results tables (train_accuracy, val_loss, ...)
SPLIT_PREFIX = {"training": "train", "validation": "val", "test": "test"}

# --- the metric vocabulary -------------------------------------------------------------------
# One name per quantity, in every pipeline's MLflow runs and results tables, so the UI sorts the
# handcrafted, CNN, transfer and fusion runs by one column (docs/metrics.md).
TRAIN_ACCURACY = "train_accuracy"
TRAIN_LOSS = "train_loss"
VAL_ACCURACY = "val_accuracy"
VAL_LOSS = "val_loss"
# transfer chooses on cross-validation over training + validation (mean and std over the folds)
CV_ACCURACY = "cv_accuracy"
CV_ACCURACY_STD = "cv_accuracy_std"
TEST_ACCURACY = "test_accuracy"
TEST_LOSS = "test_loss"
# the 95 % Wilson interval of test_accuracy, and the number of test tracks it counts
TEST_CI_LOW = "test_ci_low"
TEST_CI_HIGH = "test_ci_high"
TEST_TRACKS = "test_tracks"
METRICS = (
    TRAIN_ACCURACY,
    TRAIN_LOSS,
    VAL_ACCURACY,
    VAL_LOSS,
    CV_ACCURACY,
    CV_ACCURACY_STD,
    TEST_ACCURACY,
    TEST_LOSS,
    TEST_CI_LOW,
    TEST_CI_HIGH,
    TEST_TRACKS,
)
# split -> its accuracy / loss column
ACCURACY = {split: f"{prefix}_accuracy" for split, prefix in SPLIT_PREFIX.items()}
LOSS = {split: f"{prefix}_loss" for split, prefix in SPLIT_PREFIX.items()}

# Per-epoch curves are MLflow metrics with steps under their own prefix: Keras's own names
# (``val_accuracy``) would otherwise collide with the final values above.
EPOCH_PREFIX = "epoch_"


def epoch_metric(keras_name: str) -> str:
    """The MLflow name of a Keras history key: ``loss`` -> ``epoch_train_loss``,
    ``val_accuracy`` -> ``epoch_val_accuracy``, ``learning_rate`` -> ``epoch_learning_rate``."""
    if keras_name in ("loss", "accuracy"):
        keras_name = f"train_{keras_name}"
    return f"{EPOCH_PREFIX}{keras_name}"


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
    """How one pipeline's results table chooses its best row: the one rule of
    :mod:`music_genre.models.selection` (held-out accuracy, ties to the lower validation loss,
    then to fewer parameters), on the columns a table has."""

    select_by: str  # held-out accuracy column: higher wins
    report: str  # the test accuracy column reported for the chosen row (never chooses)
    naming: tuple[str, ...]  # the columns that name a row ("(512) fma_csv")
    tie_breakers: tuple[str, ...] = ()  # lower wins, in this order, where the table has them


# results dataset -> its rule
BEST_MODEL_RULES: dict[str, SelectionRule] = {
    "handcrafted_results": SelectionRule(
        VAL_ACCURACY, TEST_ACCURACY, ("units", "source"), (VAL_LOSS, "parameters")
    ),
    "cnn_results": SelectionRule(VAL_ACCURACY, TEST_ACCURACY, ("variant",), (VAL_LOSS, "params")),
    # no validation loss nor parameter count over the CV folds: the steadier configuration over
    # the folds wins a tie
    "transfer_results": SelectionRule(
        CV_ACCURACY,
        TEST_ACCURACY,
        ("backbone", "cut_level", "pca_variance", "classifier", "weights"),
        (CV_ACCURACY_STD,),
    ),
    # fusion weights/stacker are fitted on validation: its val_accuracy is cross-validated on
    # the validation tracks (docs/pipelines/fusion.md); late fusion has fewer parameters
    "fusion_results": SelectionRule(
        VAL_ACCURACY, TEST_ACCURACY, ("method", "members"), (VAL_LOSS, "parameters")
    ),
}
