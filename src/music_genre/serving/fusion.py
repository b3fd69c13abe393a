"""The fusion predictor over its member predictors, and ``Predictor`` (any of the four)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from music_genre.contracts import FUSION

from .predictors import CnnPredictor, HandcraftedPredictor
from .transfer import TransferPredictor


@dataclass
class FusionPredictor:
    """The fusion pipeline's combiner over its member predictors: every member predicts the
    same windows (spaced by the longest member window), then the weights or the stacker
    combine their probabilities per window."""

    bundle: Mapping[str, Any]
    members: list[Any]
    label: str = FUSION

    @property
    def class_names(self) -> list[str]:
        return list(self.bundle["class_names"])

    def window_s(self) -> float:
        # a whole-track member (infinite window) computes over the whole file whatever the
        # windows: the others' windows decide
        finite = [m.window_s() for m in self.members if math.isfinite(m.window_s())]
        return max(finite) if finite else math.inf

    def _handcrafted(self) -> HandcraftedPredictor | None:
        return next((m for m in self.members if isinstance(m, HandcraftedPredictor)), None)

    def input_description(self, duration_s: float, windows: int) -> str | None:
        member = self._handcrafted()
        if member is None:
            return None
        return f"handcrafted member: {member.input_description(duration_s, windows)}"

    def audio_warning(self, duration_s: float) -> str | None:
        member = self._handcrafted()
        return None if member is None else member.audio_warning(duration_s)

    def window_probabilities(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        from music_genre.models.fusion import fused_probabilities

        return fused_probabilities(
            self.bundle, [m.window_probabilities(path, offsets) for m in self.members]
        )


Predictor = CnnPredictor | TransferPredictor | HandcraftedPredictor | FusionPredictor


def handcrafted_training_audio(predictor: Predictor) -> str | None:
    """What the predictor's handcrafted model (alone or a fusion member) was trained on."""
    from music_genre.audio.training_audio import describe_record, feature_audio_record

    if isinstance(predictor, FusionPredictor):
        member = predictor._handcrafted()
        return None if member is None else handcrafted_training_audio(member)
    if isinstance(predictor, HandcraftedPredictor):
        return describe_record(
            predictor.audio or feature_audio_record("extract", predictor.feature_settings)
        )
    return None
