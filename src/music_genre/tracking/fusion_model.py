"""The fusion pipeline's combiner as an MLflow pyfunc model, so that ``genre_fusion`` is
registered whichever method wins: late fusion has no estimator of its own (its model is a
weight per member), and a bare scikit-learn stacker would not say which member's
probabilities go where.

Input: a table with one column per member and genre, ``<member>.prob_<genre>`` (the members'
per-track probabilities, as their ``*_test_predictions`` tables hold them), for the members the
combiner was fitted on. Output: ``prob_<genre>`` per genre and ``predicted`` (the genre name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from music_genre.models.evaluation import PROBABILITY_PREFIX
from music_genre.models.fusion import fused_probabilities


def member_column(member: str, genre: str) -> str:
    """The input column of ``member``'s probability of ``genre``."""
    return f"{member}.{PROBABILITY_PREFIX}{genre}"


class FusionCombinerModel(PythonModel):
    """One fitted fusion method (``late_fusion`` or ``stacking``) over member probabilities."""

    def __init__(self, bundle: Mapping[str, Any], method: str) -> None:
        self.method = method
        self.members = list(bundle["members"])
        self.class_names = list(bundle["class_names"])
        # only what the method applies: the weights, or the stacker
        self.bundle = {
            "members": self.members,
            "class_names": self.class_names,
            "weights": list(bundle["weights"]),
            "stacker": bundle["stacker"] if method == "stacking" else None,
            "method": method,
        }

    # what predicting needs: the runs dataset pins these (MLflow then infers nothing, slowly)
    requirements = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy")

    def input_columns(self) -> list[str]:
        return [member_column(m, g) for m in self.members for g in self.class_names]

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        missing = [c for c in self.input_columns() if c not in model_input]
        if missing:
            raise ValueError(
                f"fusion ({self.method}) needs the columns <member>.{PROBABILITY_PREFIX}<genre> "
                f"of {self.members}; missing {missing[:3]}{' ...' if len(missing) > 3 else ''}"
            )
        members = [
            model_input[[member_column(m, g) for g in self.class_names]].to_numpy(np.float64)
            for m in self.members
        ]
        fused = fused_probabilities(self.bundle, members, self.method)
        table = pd.DataFrame(fused, columns=[f"{PROBABILITY_PREFIX}{g}" for g in self.class_names])
        table["predicted"] = [self.class_names[i] for i in fused.argmax(axis=1)]
        return table


def member_input(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The model's input from member prediction tables (``track_id``, ``prob_<genre>``...), on
    the tracks every member predicted, in track order."""
    frames = []
    for member, table in tables.items():
        probabilities = table.set_index(table["track_id"].astype(str)).filter(
            like=PROBABILITY_PREFIX
        )
        frames.append(probabilities.add_prefix(f"{member}."))
    return pd.concat(frames, axis=1, join="inner").sort_index()
