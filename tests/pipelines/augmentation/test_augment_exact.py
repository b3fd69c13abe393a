"""SpecAugment's arithmetic, value by value (issue #25: the tests that kill the mutants of
music_genre.audio.augment): seeds, fill values, the range of the mask draws, the transform's kinds."""

from __future__ import annotations

import numpy as np
import pytest

from music_genre.audio import augment

SETTINGS = {"freq_mask_max_width": 2, "time_mask_max_width": 3, "mask_value": "min", "seed": 0}


def test_item_seed_is_pinned():
    # sha256("0:000002__time_mask")[:8], little-endian, >> 1: stable across runs and machines
    assert augment.item_seed(0, "000002__time_mask") == 5867493021617862235
    assert augment.item_seed(7, "a") == 4052172404282846401
    assert all(augment.item_seed(s, "k") < 2**63 for s in range(50))


def test_messages_name_the_kinds():
    kinds = tuple(augment.MASK_KINDS)
    message = f"unknown mask kind 'blur': use one of {kinds}"
    with pytest.raises(ValueError) as error:
        augment.augmented_key("1", "blur")
    assert str(error.value) == message
    with pytest.raises(ValueError) as error:
        augment.spec_augment(np.zeros((2, 2)), "blur", np.random.default_rng(0), SETTINGS)
    assert str(error.value) == message
    with pytest.raises(ValueError) as error:
        augment.mask_fill_value(np.zeros(2), "median")
    assert str(error.value) == f"mask_value must be one of {augment.MASK_VALUES}, got 'median'"
    for kinds_given in (["blur"], ["none", "blur"], []):
        with pytest.raises(ValueError) as error:
            augment.masking_transform(SETTINGS, kinds_given)
        assert str(error.value) == f"kinds must be drawn from ('none', *{kinds}), got {kinds_given}"


def test_mean_fill_is_accumulated_in_float64():
    spec = np.array([2.0**24, 1.0, 1.0, 1.0], dtype=np.float32)
    assert augment.mask_fill_value(spec, "mean") == 4194304.75


def test_mask_draws_cover_their_whole_range():
    rng = np.random.default_rng(0)
    draws = [augment.sample_mask(rng, 6, 2) for _ in range(400)]
    assert {w for _, w in draws} == {0, 1, 2}
    for width in (0, 1, 2):
        assert {s for s, w in draws if w == width} == set(range(6 - width + 1))
    assert augment.sample_mask(np.random.default_rng(0), 2, 5)[1] <= 2


def test_transform_draws_every_kind_and_masks():
    spec = np.arange(24, dtype=np.float32).reshape(4, 6) + 1.0
    transform = augment.masking_transform(
        {**SETTINGS, "freq_mask_max_width": 4}, ("none", "freq_mask")
    )
    rng = np.random.default_rng(1)
    outcomes = [transform(spec, rng) for _ in range(60)]
    unchanged = sum(out is spec for out in outcomes)
    masked = sum(out is not spec and (out == 1.0).sum() > 1 for out in outcomes)
    assert unchanged > 10 and masked > 10
