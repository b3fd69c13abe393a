"""Augmentation: mask widths and values, seeding, training-only copies, re-runs, and the same
masking inside tf.data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from music_genre.audio.augment import (
    augment_item,
    augmentation_settings,
    augmented_key,
    item_seed,
    mask_spectrogram,
    masking_transform,
    sample_mask,
    spec_augment,
    split_augmented_key,
)
from music_genre.audio.spectrograms import SpectrogramBatch, spectrogram_tf_dataset, to_study_image
from music_genre.datasets import SpectrogramStoreDataset, SpectrogramStoreIndexDataset
from music_genre.pipelines.augmentation import create_pipeline
from music_genre.pipelines.augmentation import nodes as augmentation_nodes

PARAMS = {
    "freq_mask_max_width": 27,
    "time_mask_max_width": 100,
    "mask_value": "image_zero",
    "seed": 42,
    "write_batch_size": 3,
}
SETTINGS = augmentation_settings(PARAMS)
SHAPE = (128, 1280)


def _spec(seed: int) -> np.ndarray:
    """A dB-like spectrogram with distinct values (so every masked cell is detectable)."""
    return (np.random.default_rng(seed).standard_normal(SHAPE) * 15 - 40).astype(np.float32)


def _masked_run(original: np.ndarray, masked: np.ndarray, axis: int) -> tuple[int, int]:
    """(start, width) of the rows (axis 0) / columns (axis 1) that changed; asserts that they
    are one contiguous run covering the whole other axis and that nothing else changed."""
    changed = (masked != original).any(axis=1 - axis)
    positions = np.flatnonzero(changed)
    if positions.size == 0:
        return 0, 0
    start, width = int(positions[0]), int(positions.size)
    assert np.array_equal(positions, np.arange(start, start + width)), "mask is not contiguous"
    region = masked[start : start + width] if axis == 0 else masked[:, start : start + width]
    assert np.all(region == region.flat[0]), "mask does not cover the whole other axis"
    return start, width


# -- the masking ---------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "axis", "limit"), [("freq_mask", 0, 27), ("time_mask", 1, 100)])
def test_mask_widths_are_uniform_within_bounds(kind, axis, limit):
    rng = np.random.default_rng(0)
    draws = [sample_mask(rng, SHAPE[axis], limit) for _ in range(6000)]
    widths = np.array([w for _, w in draws])
    assert widths.min() == 0 and widths.max() == limit
    counts = np.bincount(widths, minlength=limit + 1)
    expected = len(draws) / (limit + 1)
    assert counts.min() > 0.5 * expected and counts.max() < 1.5 * expected  # roughly uniform
    assert all(0 <= s and s + w <= SHAPE[axis] for s, w in draws)

    spec = _spec(1)
    for i in range(40):
        masked = augment_item(spec, f"track{i}", kind, SETTINGS)
        start, width = _masked_run(spec, masked, axis)
        assert 0 <= width <= limit and start + width <= SHAPE[axis]


def test_masks_are_reproducible_by_seed_and_differ_between_items():
    spec = _spec(2)
    first = augment_item(spec, "000001", "time_mask", SETTINGS)
    assert np.array_equal(first, augment_item(spec, "000001", "time_mask", SETTINGS))
    other_seed = augmentation_settings({**PARAMS, "seed": 7})
    runs = {
        _masked_run(spec, augment_item(spec, f"{i:06d}", "time_mask", SETTINGS), 1)
        for i in range(10)
    }
    assert len(runs) > 5  # each item draws its own mask
    assert any(
        not np.array_equal(
            augment_item(spec, f"{i:06d}", "time_mask", SETTINGS),
            augment_item(spec, f"{i:06d}", "time_mask", other_seed),
        )
        for i in range(5)
    )


def test_item_seeds_and_masks_are_the_same_in_every_run_and_on_every_machine():
    """Pinned values, computed once: a seed from Python's salted ``hash()`` or any other
    per-process state would change them in the next interpreter."""
    assert item_seed(42, "000001__time_mask") == 970694221682797704
    assert item_seed(7, "000001__time_mask") == 4580776097697090228
    assert item_seed(42, "000001__freq_mask") == 53492392481100414
    spec = _spec(2)
    assert [
        _masked_run(spec, augment_item(spec, f"{i:06d}", "time_mask", SETTINGS), 1)
        for i in range(5)
    ] == [(228, 25), (1068, 85), (662, 81), (894, 20), (923, 80)]
    assert [
        _masked_run(spec, augment_item(spec, f"{i:06d}", "freq_mask", SETTINGS), 0)
        for i in range(5)
    ] == [(0, 0), (93, 9), (4, 26), (17, 8), (83, 12)]


def test_image_zero_is_zero_on_the_studys_image_and_other_mask_values():
    spec = _spec(3)
    masked = mask_spectrogram(spec, axis=0, start=10, width=5, value=float(spec.max()))
    image = to_study_image(masked)
    # The study's image is flipped (low frequencies at the bottom): rows 10..14 -> 113..117.
    assert np.all(image[128 - 15 : 128 - 10] == 0)
    assert np.array_equal(
        np.delete(image, range(113, 118), axis=0),
        np.delete(to_study_image(spec), range(113, 118), axis=0),
    )
    for mode, expected in (
        ("min", spec.min()),
        ("mean", spec.mean(dtype=np.float64)),
        ("image_zero", spec.max()),
    ):
        settings = augmentation_settings(
            {**PARAMS, "mask_value": mode, "time_mask_max_width": 1280}
        )
        out = spec_augment(spec, "time_mask", np.random.default_rng(5), settings)
        start, width = _masked_run(spec, out, 1)
        assert width > 0
        assert out[0, start] == pytest.approx(expected, rel=1e-6)


def test_augmented_keys_round_trip():
    assert augmented_key("000002", "freq_mask") == "000002__freq_mask"
    assert split_augmented_key("blues__a__time_mask") == ("blues__a", "time_mask")
    with pytest.raises(ValueError):
        split_augmented_key("000002")


# -- the pipeline --------------------------------------------------------------------------
@pytest.fixture
def spectrogram_store(tmp_path):
    """A stored spectrogram per track: 4 training, 2 validation, 2 test."""
    splits = ["training"] * 4 + ["validation"] * 2 + ["test"] * 2
    tracks = pd.DataFrame(
        {
            "track_id": [f"{i:06d}" for i in range(8)],
            "path": [f"/audio/{i}.mp3" for i in range(8)],
            "genre": ["a", "b"] * 4,
            "label": [0, 1] * 4,
            "split": splits,
        }
    )
    store = SpectrogramStoreDataset(str(tmp_path / "spectrograms"))
    tags = {t: f"tag{t}" for t in tracks["track_id"]}
    settings = {"sample_rate": 22050, "hop_length": 512, "storage_dtype": "float16"}
    store.save(SpectrogramBatch("0123456789ab", settings, tags=tags, is_manifest=True))
    arrays = {t: _spec(i).astype(np.float16) for i, t in enumerate(tracks["track_id"])}
    store.save(SpectrogramBatch("0123456789ab", settings, arrays, tags))
    return tracks, store, tmp_path / "augmented"


def _catalog(tracks, store, augmented_path, params) -> DataCatalog:
    return DataCatalog(
        {
            "tracks": MemoryDataset(tracks),
            "params:augmentation": MemoryDataset(params),
            "log_mel_spectrograms": store,
            "augmented_spectrograms": SpectrogramStoreDataset(str(augmented_path)),
            "augmented_spectrogram_store_index": SpectrogramStoreIndexDataset(str(augmented_path)),
            "augmentation_examples": MemoryDataset(),
        }
    )


@pytest.fixture
def count_augmented(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = augmentation_nodes.augment_item

    def counting(spec, track_id, kind, settings):
        calls.append(augmented_key(track_id, kind))
        return original(spec, track_id, kind, settings)

    monkeypatch.setattr(augmentation_nodes, "augment_item", counting)
    return calls


def test_only_training_spectrograms_are_augmented(spectrogram_store, count_augmented):
    tracks, store, augmented_path = spectrogram_store
    catalog = _catalog(tracks, store, augmented_path, PARAMS)
    SequentialRunner().run(create_pipeline(), catalog)

    augmented = catalog.load("augmented_spectrograms")
    training = ["000000", "000001", "000002", "000003"]
    assert sorted(augmented) == sorted(
        augmented_key(t, k) for t in training for k in ("freq_mask", "time_mask")
    )
    originals = store.load()
    for key, load in augmented.items():
        track_id, kind = split_augmented_key(key)
        expected = augment_item(originals[track_id](), track_id, kind, SETTINGS)
        assert np.array_equal(load(), expected.astype(np.float16).astype(np.float32))
    # "training set x 3" for the cnn pipeline: originals + the two copies of each.
    assert len([t for t in originals if t in training]) + len(augmented) == 3 * len(training)
    assert catalog.load("augmentation_examples").axes

    count_augmented.clear()  # a re-run augments nothing
    SequentialRunner().run(create_pipeline(), catalog)
    assert count_augmented == []

    count_augmented.clear()  # another mask value: new copies, in their own folder
    catalog = _catalog(tracks, store, augmented_path, {**PARAMS, "mask_value": "min"})
    SequentialRunner().run(create_pipeline(), catalog)
    assert len(count_augmented) == 8
    assert catalog.load("augmented_spectrograms").settings["mask_value"] == "min"


def test_interrupted_augmentation_resumes_with_the_same_masks(spectrogram_store, count_augmented):
    tracks, store, augmented_path = spectrogram_store
    augmented = SpectrogramStoreDataset(str(augmented_path))
    index = SpectrogramStoreIndexDataset(str(augmented_path))
    params = {**PARAMS, "write_batch_size": 2}
    chunks = augmentation_nodes.augment_training_spectrograms(
        tracks, store.load(), index.load(), params
    )
    augmented.save(next(chunks))  # manifest
    augmented.save(next(chunks))  # the two copies of the first training track
    chunks.close()
    partial = {k: v() for k, v in augmented.load().items()}
    assert len(partial) == 2

    count_augmented.clear()
    catalog = _catalog(tracks, store, augmented_path, params)
    SequentialRunner().run(create_pipeline(), catalog)
    assert len(count_augmented) == 6  # 3 remaining training tracks x 2
    complete = catalog.load("augmented_spectrograms")
    assert len(complete) == 8
    for key, array in partial.items():
        assert np.array_equal(complete[key](), array)


# -- tf.data -------------------------------------------------------------------------------
@pytest.mark.slow
def test_same_masking_inside_tf_data(spectrogram_store):
    tf = pytest.importorskip("tensorflow")
    from music_genre.audio.augment import tf_spec_augment

    tracks, store, _ = spectrogram_store
    spectrograms = store.load()
    spec = spectrograms["000001"]()
    for kind in ("freq_mask", "time_mask"):
        seed = item_seed(SETTINGS["seed"], augmented_key("000001", kind))
        out = tf_spec_augment(tf.constant(spec), tf.constant(seed, tf.int64), kind, SETTINGS)
        assert np.array_equal(out.numpy(), augment_item(spec, "000001", kind, SETTINGS))

    ids = list(tracks["track_id"])
    labels = list(tracks["label"])
    transform = masking_transform(SETTINGS)

    def epochs(dataset, n):
        return [np.concatenate([x.numpy() for x, _ in dataset]) for _ in range(n)]

    dataset = spectrogram_tf_dataset(
        spectrograms, ids, labels, batch_size=3, shuffle=True, seed=1, transform=transform
    )
    first, second = epochs(dataset, 2)
    again = epochs(
        spectrogram_tf_dataset(
            spectrograms, ids, labels, batch_size=3, shuffle=True, seed=1, transform=transform
        ),
        1,
    )[0]
    assert first.shape == (8, *SHAPE) and first.dtype == np.float32
    assert np.array_equal(first, again)  # reproducible by seed
    assert not np.array_equal(first, second)  # new order and masks every epoch
    batch_x, batch_y = next(iter(spectrogram_tf_dataset(spectrograms, ids, labels, batch_size=3)))
    assert batch_x.shape == (3, *SHAPE) and batch_y.dtype == tf.int32
    assert np.array_equal(batch_x.numpy()[0], spectrograms["000000"]())
    with pytest.raises(KeyError, match="no stored spectrogram"):
        spectrogram_tf_dataset(spectrograms, ["nope"], [0])
