"""Class probabilities of a fitted scikit-learn classifier, with or without ``predict_proba``:
what the transfer pipeline evaluates and the prediction command serves."""

from __future__ import annotations

from typing import Any

import numpy as np


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
