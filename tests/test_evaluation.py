"""music_genre.models.evaluation, value by value: the intervals, the McNemar test and the prediction
tables every results table and summary.md is built from (issue #25: these are the tests that kill
its mutants; the Wilson bounds are recomputed here from the closed formula, not from scipy)."""

from __future__ import annotations

import math
from statistics import NormalDist
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from music_genre.models import evaluation as ev


def _wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_wilson_interval_is_the_closed_formula():
    assert ev.wilson_interval(7, 10) == pytest.approx(_wilson(7, 10, 0.95), abs=1e-9)
    assert ev.wilson_interval(7, 10, 0.9) == pytest.approx(_wilson(7, 10, 0.9), abs=1e-9)
    assert ev.wilson_interval(1, 1) == pytest.approx(_wilson(1, 1, 0.95), abs=1e-9)
    for total in (0, -1):
        assert all(math.isnan(x) for x in ev.wilson_interval(0, total))


def test_accuracy_interval_rounds_the_count():
    assert ev.accuracy_interval(0.66, 3) == pytest.approx(_wilson(2, 3, 0.95), abs=1e-9)
    assert ev.accuracy_interval(0.7, 10, 0.9) == pytest.approx(_wilson(7, 10, 0.9), abs=1e-9)
    assert ev.accuracy_interval(1.0, 1) == pytest.approx(_wilson(1, 1, 0.95), abs=1e-9)
    for accuracy, total in ((0.5, 0), (float("nan"), 10), (float("inf"), 10)):
        assert all(math.isnan(x) for x in ev.accuracy_interval(accuracy, total))
    low, high = _wilson(7, 10, 0.95)
    assert ev.interval_columns(0.7, 10) == pytest.approx(
        {"test_ci_low": low, "test_ci_high": high, "test_tracks": 10}
    )


def test_format_interval():
    assert ev.format_interval(0.5123, 0.44, 0.5831) == "0.512 [0.440, 0.583]"
    assert ev.format_interval(0.5123, 0.44, 0.5831, digits=1) == "0.5 [0.4, 0.6]"
    assert ev.format_interval(0.5123, None, 0.6) == "0.512"
    assert ev.format_interval(0.5123, 0.4, None) == "0.512"
    assert ev.format_interval(0.5123, float("nan"), 0.6) == "0.512"
    assert ev.format_interval(0.5123, 0.4, float("nan"), digits=2) == "0.51"
    assert ev.format_interval(None, 0.4, 0.6) == "missing"
    assert ev.format_interval(float("nan"), 0.4, 0.6) == "missing"


def test_mcnemar_exact():
    a = [True, True, True, True, True, False, True]
    b = [False, False, False, False, False, False, True]
    assert ev.mcnemar_exact(a, b) == {"n": 7, "only_a": 5, "only_b": 0, "p_value": 0.0625}
    assert ev.mcnemar_exact(b, a) == {"n": 7, "only_a": 0, "only_b": 5, "p_value": 0.0625}
    # 3 of 4 discordant pairs for a: P(X<=1 or X>=3 | n=4) = 10/16
    assert ev.mcnemar_exact([1, 1, 1, 0], [0, 0, 0, 1])["p_value"] == pytest.approx(0.625)
    assert ev.mcnemar_exact([True, False], [True, False])["p_value"] == 1.0
    # truthy integers count as correct, not as bit patterns
    assert ev.mcnemar_exact([2, 1], [1, 0]) == {"n": 2, "only_a": 1, "only_b": 0, "p_value": 1.0}
    assert ev.mcnemar_exact([1, 0], [2, 1])["only_a"] == 0
    with pytest.raises(ValueError, match=r"same items: \(2,\) vs \(3,\)"):
        ev.mcnemar_exact([True, False], [True, False, True])


def test_prediction_table_and_its_readers():
    probabilities = [[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]]
    table = ev.prediction_table([7, "8", 9], [1, 0, 1], probabilities, ["Pop", "Rock"])
    assert list(table.columns) == ["track_id", "label", "predicted", "prob_Pop", "prob_Rock"]
    assert table["track_id"].tolist() == ["7", "8", "9"]
    assert table["label"].tolist() == [1, 0, 1] and table["label"].dtype == np.int64
    assert table["predicted"].tolist() == [1, 0, 0] and table["predicted"].dtype == np.int64
    assert table["prob_Rock"].tolist() == [0.8, 0.4, 0.5]
    narrow = ev.prediction_table(
        [1, 2],
        np.array([1, 0], np.int32),
        np.array(probabilities[:2], np.float32),
        ["Pop", "Rock"],
        np.array([1, 1], np.int32),
    )
    assert narrow.dtypes.astype(str).tolist()[1:] == ["int64", "int64", "float64", "float64"]
    float32_table = pd.DataFrame({"prob_a": np.array([0.25], np.float32)})
    assert ev.probability_matrix(float32_table).dtype == np.float64
    own = ev.prediction_table([1, 2, 3], [1, 0, 1], probabilities, ["Pop", "Rock"], [0, 0, 1])
    assert own["predicted"].tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match=r"shape \(3, 2\) for 2 tracks and 2 classes"):
        ev.prediction_table([1, 2], [0, 1], probabilities, ["Pop", "Rock"])
    table["note"] = "x"
    assert ev.class_names_of(table) == ["Pop", "Rock"]
    matrix = ev.probability_matrix(table)
    assert matrix.dtype == np.float64 and matrix.tolist() == probabilities
    assert ev.class_names_of(pd.DataFrame(columns=["track_id", "xprob_a"])) == []


def test_accuracy_with_interval():
    low, high = _wilson(3, 4, 0.95)
    assert ev.accuracy_with_interval([0, 1, 1, 2], [0, 1, 2, 2]) == pytest.approx(
        {"accuracy": 0.75, "ci_low": low, "ci_high": high, "n": 4}
    )
    empty = ev.accuracy_with_interval([], [])
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in ("accuracy", "ci_low", "ci_high"))


def test_stopped_at_iteration_limit():
    def clf(n_iter, max_iter=100):
        return SimpleNamespace(n_iter_=n_iter, max_iter=max_iter)

    assert ev.stopped_at_iteration_limit(clf(100)) == 1.0
    assert ev.stopped_at_iteration_limit(clf(101)) == 1.0
    assert ev.stopped_at_iteration_limit(clf(99)) == 0.0
    assert ev.stopped_at_iteration_limit(clf(np.array([3, 100]))) == 1.0
    assert ev.stopped_at_iteration_limit(SimpleNamespace(named_steps={"clf": clf(100)})) == 1.0
    assert ev.stopped_at_iteration_limit(SimpleNamespace(named_steps={"clf": clf(5)}), 1, 2) == 0.0
    assert ev.stopped_at_iteration_limit(clf(None)) == 0.0
    assert ev.stopped_at_iteration_limit(clf(5, None)) == 0.0
    assert ev.stopped_at_iteration_limit(clf(5, -1)) == 0.0
    assert ev.stopped_at_iteration_limit(clf(0, 0)) == 1.0
    assert ev.stopped_at_iteration_limit(SimpleNamespace(max_iter=10)) == 0.0
    assert ev.stopped_at_iteration_limit(SimpleNamespace(n_iter_=10)) == 0.0
