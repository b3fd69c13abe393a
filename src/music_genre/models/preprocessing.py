"""Feature selection the transfer classifiers need before scaling.

Backbone features are float32. A feature that is constant up to float32 rounding (a ReLU unit
that fires identically for every track, a value whose only variation is one unit in the last
place) has a tiny but non-zero standard deviation, so ``StandardScaler`` divides by ~1e-14 and
turns a one-ulp difference - a different batch composition, ONNX Runtime instead of TensorFlow -
into a shift of many standard deviations that can change the prediction. Such features carry
rounding, not information, and are dropped before scaling. A light module: every unpickled
transfer model imports it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class DropRoundingOnlyFeatures(SelectorMixin, BaseEstimator):
    """Keep the features whose standard deviation exceeds ``rtol`` times their largest absolute
    value (``rtol`` 1e-6: about 8 float32 ulps); exactly constant ones always go."""

    def __init__(self, rtol: float = 1e-6) -> None:
        self.rtol = rtol

    def fit(self, X: Any, y: Any = None) -> DropRoundingOnlyFeatures:  # noqa: N803 - sklearn
        x = validate_data(self, X, dtype=np.float64)
        spread = x.std(axis=0)
        magnitude = np.abs(x).max(axis=0)
        self.support_ = spread > self.rtol * magnitude
        if not self.support_.any():  # nothing varies: keep everything rather than nothing
            self.support_[:] = True
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self)
        return self.support_
