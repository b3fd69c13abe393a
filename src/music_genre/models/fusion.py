"""Fusion of several models' class probabilities: the arithmetic shared by the fusion pipeline
(fit on validation) and prediction (apply to new files).

Two combiners:
- ``late_fusion``: a weighted mean of the members' probabilities, weights on the simplex grid
  (step ``weight_step``) chosen by validation accuracy;
- ``stacking``: a multinomial LogisticRegression on the concatenated member probabilities.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold

METHODS = ("late_fusion", "stacking")


def simplex_weights(n_members: int, step: float) -> np.ndarray:
    """Every weight vector with entries in multiples of ``step`` that sum to 1, shape (m, n)."""
    units = round(1 / step)
    if n_members < 1 or units < 1 or abs(units * step - 1) > 1e-9:
        raise ValueError(f"fusion.weight_step={step}: use a step that divides 1 (e.g. 0.1).")
    grid = [c for c in itertools.product(range(units + 1), repeat=n_members) if sum(c) == units]
    return np.asarray(grid, dtype=np.float64) / units


def weighted_probabilities(
    members: Sequence[np.ndarray], weights: Sequence[float] | np.ndarray
) -> np.ndarray:
    """sum_i w_i P_i over members of shape (n, K)."""
    return np.tensordot(np.asarray(weights, dtype=np.float64), np.stack(members), axes=1)


def best_weights(members: Sequence[np.ndarray], labels: np.ndarray, step: float) -> np.ndarray:
    """The simplex-grid weights with the best accuracy on (members, labels); ties go to the
    higher mean log-probability of the true class, then to the more even weights."""
    grid = simplex_weights(len(members), step)
    stacked = np.stack(members)  # (M, n, K)
    fused = np.einsum("gm,mnk->gnk", grid, stacked)  # (G, n, K)
    accuracy = (fused.argmax(axis=2) == labels).mean(axis=1)
    true_prob = np.take_along_axis(fused, labels[None, :, None], axis=2)[..., 0]
    log_likelihood = np.log(np.clip(true_prob, 1e-12, None)).mean(axis=1)
    evenness = -np.abs(grid - 1 / len(members)).sum(axis=1)
    order = np.lexsort((evenness, log_likelihood, accuracy))  # last key sorts first
    return grid[order[-1]]


def fit_stacker(
    members: Sequence[np.ndarray], labels: np.ndarray, seed: int, regularization: float = 1.0
) -> LogisticRegression:
    """A multinomial logistic regression on the concatenated member probabilities."""
    return LogisticRegression(C=regularization, max_iter=2000, random_state=seed).fit(
        np.hstack(members), labels
    )


def stacker_probabilities(
    stacker: LogisticRegression, members: Sequence[np.ndarray], n_classes: int
) -> np.ndarray:
    """The stacker's probabilities for all K classes (a class it never saw gets 0)."""
    out = np.zeros((members[0].shape[0], n_classes))
    out[:, stacker.classes_] = stacker.predict_proba(np.hstack(members))
    return out


class CombinerSettings(Protocol):
    """What the combiners are fitted with (``music_genre.config.FusionParams`` has these)."""

    @property
    def weight_step(self) -> float: ...
    @property
    def stacking_c(self) -> float: ...
    @property
    def cv_folds(self) -> int: ...
    @property
    def seed(self) -> int: ...


def cross_validated_accuracy(
    method: str, members: Sequence[np.ndarray], labels: np.ndarray, settings: CombinerSettings
) -> float:
    """Accuracy of ``method`` on the validation tracks, each fold's combiner fitted on the other
    folds: the selection score of a method is never measured on what fitted it."""
    if labels.size < 2:
        return float("nan")
    folds, seed = settings.cv_folds, settings.seed
    counts = np.bincount(labels)
    smallest = int(counts[counts > 0].min())
    if smallest >= 2:
        folds = max(2, min(folds, smallest))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:  # a genre with a single validation track: plain folds (it is held out once)
        splitter = KFold(n_splits=max(2, min(folds, labels.size)), shuffle=True, random_state=seed)
    n_classes = members[0].shape[1]
    correct = 0
    for fit, held in splitter.split(members[0], labels):
        fit_members = [m[fit] for m in members]
        held_members = [m[held] for m in members]
        if method == "late_fusion":
            weights = best_weights(fit_members, labels[fit], settings.weight_step)
            fused = weighted_probabilities(held_members, weights)
        else:
            stacker = fit_stacker(fit_members, labels[fit], seed, settings.stacking_c)
            fused = stacker_probabilities(stacker, held_members, n_classes)
        correct += int((fused.argmax(axis=1) == labels[held]).sum())
    return correct / labels.size


def fused_probabilities(
    bundle: Mapping[str, Any], members: Sequence[np.ndarray], method: str | None = None
) -> np.ndarray:
    """Apply a fitted fusion bundle (see the fusion pipeline) to member probabilities given in
    ``bundle["members"]`` order."""
    method = method or bundle["method"]
    if method == "late_fusion":
        return weighted_probabilities(members, bundle["weights"])
    if method == "stacking":
        return stacker_probabilities(bundle["stacker"], members, len(bundle["class_names"]))
    raise ValueError(f"unknown fusion method {method!r}: use one of {METHODS}")
