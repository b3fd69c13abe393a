"""music_genre.pipelines.ingestion.splits.grouped_split on its own, in milliseconds (issue #25:
the tests that kill its mutants): fold count from the smaller fraction, how many folds each side
takes, seeded, every group on one side."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from music_genre.errors import CollectionError
from music_genre.pipelines.ingestion.splits import grouped_split


def _split(n: int, validation: float, test: float, seed: int = 0, per_group: int = 1) -> list:
    genres = pd.Series(np.arange(n) % 2)
    groups = pd.Series(np.arange(n) // per_group)
    fractions = {"validation": validation, "test": test}
    return grouped_split(genres, groups, fractions, seed).tolist()


def _counts(split: list) -> dict[str, int]:
    return {side: split.count(side) for side in ("training", "validation", "test")}


@pytest.mark.parametrize(
    "n, validation, test, counts",
    [
        (20, 0.1, 0.2, {"training": 14, "validation": 2, "test": 4}),  # 10 folds: 1 val, 2 test
        (20, 0.1, 0.5, {"training": 8, "validation": 2, "test": 10}),  # 10 folds: 1 val, 5 test
        (10, 0.2, 0.2, {"training": 6, "validation": 2, "test": 2}),  # 5 folds
        (10, 0.4, 0.2, {"training": 4, "validation": 4, "test": 2}),  # 5 folds: 2 val, 1 test
        (6, 0.4, 0.4, {"training": 2, "validation": 2, "test": 2}),  # at least 3 folds
        (14, 0.15, 0.5, {"training": 4, "validation": 2, "test": 8}),  # 7 folds: 1 val, 4 test
    ],
)
def test_sides_take_whole_folds(n, validation, test, counts):
    assert _counts(_split(n, validation, test)) == counts


def test_exactly_as_many_groups_as_folds_is_enough():
    assert _counts(_split(6, 0.4, 0.4, per_group=2)) == {"training": 2, "validation": 2, "test": 2}


def test_seeded_and_groups_stay_together():
    first = _split(12, 0.2, 0.2, seed=0, per_group=2)
    assert first == ["training"] * 4 + ["validation"] * 2 + ["training"] * 2 + ["test"] * 4
    assert _split(12, 0.2, 0.2, seed=0, per_group=2) == first
    other = _split(12, 0.2, 0.2, seed=1, per_group=2)
    assert (
        other
        == ["training"] * 2 + ["validation"] * 2 + ["test"] * 2 + ["training"] * 4 + ["test"] * 2
    )
    assert all(other[i] == other[i + 1] for i in range(0, 12, 2))


def test_too_few_groups_names_what_is_needed():
    genres, groups = pd.Series([0, 1, 0, 1]), pd.Series(["a", "b", "c", "d"])
    with pytest.raises(CollectionError) as error:
        grouped_split(genres, groups, {"validation": 0.2, "test": 0.25}, 0, "artist")
    assert str(error.value) == (
        "ingestion.group_by='artist': 4 groups cannot be split "
        "{'validation': 0.2, 'test': 0.25} with every group on one side (at least 5 needed); "
        "add tracks, group by something finer, or provide ingestion.split_file."
    )
