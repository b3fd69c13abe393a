"""Uncertainty of accuracies, shared by every pipeline and the report.

- A test accuracy gets a 95 % **Wilson score interval** (binomial: k correct of n test tracks).
  It needs only k and n, so every table can carry it, it is deterministic, and unlike the
  normal approximation it stays inside [0, 1] and behaves for small test sets.
- Two models evaluated on the **same** test tracks are compared with the **exact McNemar test**
  (a two-sided binomial test on the tracks where exactly one of them is right): overlapping
  intervals say little about a paired difference.
- Cross-validation accuracies carry the spread (standard deviation) over the folds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from music_genre.contracts import TEST_CI_HIGH, TEST_CI_LOW, TEST_TRACKS

CONFIDENCE = 0.95
PROBABILITY_PREFIX = "prob_"  # per-class probability columns of the prediction tables
PREDICTION_COLUMNS = ["track_id", "label", "predicted"]


def wilson_interval(
    correct: int, total: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The Wilson score interval of ``correct / total``; (nan, nan) when ``total`` is 0."""
    if total <= 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest  # 1-2 s to import: not on the prediction command's path

    interval = binomtest(int(correct), int(total)).proportion_ci(confidence, method="wilson")
    return float(interval.low), float(interval.high)


def accuracy_interval(
    accuracy: float, total: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Wilson interval from an accuracy measured on ``total`` items (k = round(acc * n))."""
    if total <= 0 or not np.isfinite(accuracy):
        return float("nan"), float("nan")
    return wilson_interval(round(float(accuracy) * int(total)), int(total), confidence)


def interval_columns(accuracy: float, total: int) -> dict[str, Any]:
    """``test_ci_low``, ``test_ci_high`` (the 95 % Wilson interval of the test accuracy) and
    ``test_tracks`` for a results-table row or an MLflow run."""
    low, high = accuracy_interval(accuracy, total)
    return {TEST_CI_LOW: low, TEST_CI_HIGH: high, TEST_TRACKS: int(total)}


def format_interval(value: float, low: float, high: float, digits: int = 3) -> str:
    """``0.512 [0.441, 0.583]``; ``missing`` for an absent value; no brackets without bounds."""
    if value is None or pd.isna(value):
        return "missing"
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return f"{float(value):.{digits}f}"
    return f"{float(value):.{digits}f} [{float(low):.{digits}f}, {float(high):.{digits}f}]"


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, Any]:
    """Exact McNemar test of two models on the same items (paired, two-sided).

    ``only_a``/``only_b`` count the items only one model got right; the p-value is the
    two-sided binomial test of ``only_a`` out of ``only_a + only_b`` against 1/2 (1.0 when the
    models never disagree on correctness)."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same items: {a.shape} vs {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    from scipy.stats import binomtest

    p_value = 1.0 if discordant == 0 else float(binomtest(only_a, discordant, 0.5).pvalue)
    return {"n": int(a.size), "only_a": only_a, "only_b": only_b, "p_value": p_value}


def prediction_table(
    track_ids: Sequence[Any],
    labels: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    predicted: Sequence[int] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-track predictions: track_id, label, predicted (the model's own prediction, by default
    the argmax of the probabilities), one ``prob_<genre>`` column per class in label order."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(track_ids), len(class_names)):
        raise ValueError(
            f"probabilities of shape {probabilities.shape} for {len(track_ids)} tracks and "
            f"{len(class_names)} classes"
        )
    table = pd.DataFrame(
        {
            "track_id": [str(t) for t in track_ids],
            "label": np.asarray(labels, dtype=np.int64),
            "predicted": np.asarray(
                probabilities.argmax(axis=1) if predicted is None else predicted, dtype=np.int64
            ),
        }
    )
    for index, name in enumerate(class_names):
        table[f"{PROBABILITY_PREFIX}{name}"] = probabilities[:, index]
    return table


def probability_matrix(predictions: pd.DataFrame) -> np.ndarray:
    """The ``prob_*`` columns of a prediction table, in their order, as an (n, K) array."""
    columns = [c for c in predictions.columns if c.startswith(PROBABILITY_PREFIX)]
    return predictions[columns].to_numpy(np.float64)


def class_names_of(predictions: pd.DataFrame) -> list[str]:
    return [
        c.removeprefix(PROBABILITY_PREFIX)
        for c in predictions.columns
        if c.startswith(PROBABILITY_PREFIX)
    ]


def accuracy_with_interval(
    labels: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray
) -> dict[str, float]:
    """Accuracy, its Wilson interval and n, from per-item labels and predictions."""
    truth, guess = np.asarray(labels), np.asarray(predicted)
    correct = int(np.sum(truth == guess))
    low, high = wilson_interval(correct, truth.size)
    return {
        "accuracy": correct / truth.size if truth.size else float("nan"),
        "ci_low": low,
        "ci_high": high,
        "n": int(truth.size),
    }


def stopped_at_iteration_limit(estimator: Any, x: Any = None, y: Any = None) -> float:
    """1.0 when the pipeline's fitted classifier used every iteration it was allowed, which is
    exactly when scikit-learn warns ``ConvergenceWarning`` (LinearSVC, MLPClassifier; SVC has
    no limit by default), else 0.0. Has a scorer's signature so that GridSearchCV records it
    for every fold. It lives in this light module because every grid-search worker process
    imports it to unpickle the scorer."""
    classifier = estimator.named_steps["clf"] if hasattr(estimator, "named_steps") else estimator
    n_iter, max_iter = getattr(classifier, "n_iter_", None), getattr(classifier, "max_iter", -1)
    if n_iter is None or max_iter is None or max_iter < 0:
        return 0.0
    return float(np.max(n_iter) >= max_iter)
