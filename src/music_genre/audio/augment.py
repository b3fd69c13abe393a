"""SpecAugment-style masking (Park et al. 2019) as the study used it: ONE implementation.

The study made two new spectrograms per training spectrogram: one with a frequency mask whose
width is drawn uniformly from [0, 27] bins, one with a time mask whose width is drawn uniformly
from [0, 100] frames. Everything here is plain numpy and is used both

- by the augmentation pipeline, which materializes the masked copies (``augmented_spectrograms``),
  with one generator per item seeded by ``(seed, key)`` (:func:`item_seed`), so an item's mask
  does not depend on which other items exist, on their order, or on what a re-run skips; and
- inside ``tf.data`` for on-the-fly augmentation without materializing anything:
  :func:`masking_transform` as the ``transform`` of
  :func:`music_genre.audio.spectrograms.spectrogram_tf_dataset`, or :func:`tf_spec_augment` in a
  ``Dataset.map`` (a ``tf.numpy_function`` around the same :func:`spec_augment`).

Masked value (``augmentation.mask_value``):

- ``image_zero`` (the study's wording): the study masked "a range of pixels" to zero on its
  inverted 0..255 images (:func:`music_genre.audio.spectrograms.to_study_image`), where 0 is the
  spectrogram's **maximum**. Filling the dB spectrogram with its own maximum gives exactly that
  image (min and max are unchanged, so the per-image scaling is too).
- ``min``: the spectrogram's minimum, i.e. silence (255 on the study's image).
- ``mean``: the spectrogram's mean, as in the SpecAugment paper (its inputs were normalized to
  mean zero and masked with zero).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

# kind -> (axis of a (n_mels, frames) spectrogram, parameter holding its maximum width)
MASK_KINDS: dict[str, tuple[int, str]] = {
    "freq_mask": (0, "freq_mask_max_width"),
    "time_mask": (1, "time_mask_max_width"),
}
MASK_VALUES = ("image_zero", "min", "mean")
KEY_SEPARATOR = "__"


def augmentation_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that decide the masked copies, from ``params:augmentation`` (validated
    when the run starts: music_genre.config.AugmentationParams)."""
    return {
        key: params[key]
        for key in ("seed", "freq_mask_max_width", "time_mask_max_width", "mask_value")
    }


def augmented_key(track_id: str, kind: str) -> str:
    """``<track_id>__freq_mask`` / ``<track_id>__time_mask``: the keys of augmented_spectrograms."""
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}: use one of {tuple(MASK_KINDS)}")
    return f"{track_id}{KEY_SEPARATOR}{kind}"


def split_augmented_key(key: str) -> tuple[str, str]:
    """Inverse of :func:`augmented_key`: ``"000002__time_mask"`` -> ``("000002", "time_mask")``."""
    track_id, sep, kind = key.rpartition(KEY_SEPARATOR)
    if not sep or kind not in MASK_KINDS:
        raise ValueError(f"{key!r} is not an augmented key (<track_id>__<{'|'.join(MASK_KINDS)}>)")
    return track_id, kind


def item_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one item from the run seed and the item's key (stable across runs and
    machines, unlike Python's ``hash``)."""
    digest = hashlib.sha256(f"{int(seed)}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def mask_fill_value(spec: np.ndarray, mode: str) -> float:
    """The value a mask writes, from the spectrogram it is applied to (see module docstring)."""
    if mode == "image_zero":
        return float(np.max(spec))
    if mode == "min":
        return float(np.min(spec))
    if mode == "mean":
        return float(np.mean(spec, dtype=np.float64))
    raise ValueError(f"mask_value must be one of {MASK_VALUES}, got {mode!r}")


def sample_mask(rng: np.random.Generator, size: int, max_width: int) -> tuple[int, int]:
    """SpecAugment's draw: width ``w ~ U{0..max_width}`` (capped at ``size``), then the start
    ``s ~ U{0..size - w}``. Returns ``(start, width)``; width 0 leaves the spectrogram as is."""
    width = int(rng.integers(0, max_width + 1))
    width = min(width, size)
    start = int(rng.integers(0, size - width + 1))
    return start, width


def mask_spectrogram(
    spec: np.ndarray, axis: int, start: int, width: int, value: float
) -> np.ndarray:
    """A copy of ``spec`` with ``width`` rows (axis 0, mel bins) or columns (axis 1, frames)
    from ``start`` set to ``value``."""
    out = np.array(spec, copy=True)
    index: list[Any] = [slice(None)] * out.ndim
    index[axis] = slice(start, start + width)
    out[tuple(index)] = value
    return out


def spec_augment(
    spec: np.ndarray, kind: str, rng: np.random.Generator, settings: Mapping[str, Any]
) -> np.ndarray:
    """One mask of ``kind`` (``freq_mask`` | ``time_mask``) drawn with ``rng`` — the single
    implementation behind the materialized copies and the tf.data functions."""
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}: use one of {tuple(MASK_KINDS)}")
    axis, width_key = MASK_KINDS[kind]
    start, width = sample_mask(rng, spec.shape[axis], int(settings[width_key]))
    value = mask_fill_value(spec, settings["mask_value"])
    return mask_spectrogram(spec, axis, start, width, value)


def augment_item(
    spec: np.ndarray, track_id: str, kind: str, settings: Mapping[str, Any]
) -> np.ndarray:
    """The materialized copy ``<track_id>__<kind>``: :func:`spec_augment` with the generator
    seeded by ``item_seed(settings["seed"], augmented_key(track_id, kind))``."""
    rng = np.random.default_rng(item_seed(settings["seed"], augmented_key(track_id, kind)))
    return spec_augment(spec, kind, rng, settings)


def masking_transform(
    settings: Mapping[str, Any], kinds: Sequence[str] = ("none", "freq_mask", "time_mask")
) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """A ``transform(spec, rng)`` for :func:`music_genre.audio.spectrograms.spectrogram_tf_dataset`:
    each item gets one kind drawn uniformly from ``kinds`` (``none`` = unchanged). The default
    mirrors the study's "training set x 3" (a third original, a third of each mask), drawn anew
    every epoch instead of fixed once."""
    unknown = [k for k in kinds if k != "none" and k not in MASK_KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be drawn from ('none', *{tuple(MASK_KINDS)}), got {kinds}")
    choices = list(kinds)

    def transform(spec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        kind = choices[int(rng.integers(0, len(choices)))]
        return spec if kind == "none" else spec_augment(spec, kind, rng, settings)

    return transform


def tf_spec_augment(spec: Any, seed: Any, kind: str, settings: Mapping[str, Any]) -> Any:
    """:func:`spec_augment` on a tensor, for ``tf.data.Dataset.map``: ``seed`` is an int64
    scalar tensor (e.g. from ``Dataset.enumerate`` combined with a run seed), the generator is
    ``numpy.random.default_rng(seed)``. With ``seed = item_seed(s, augmented_key(t, kind))`` it
    returns exactly the materialized copy of track ``t``."""
    import tensorflow as tf

    settings = dict(settings)

    def _apply(array: np.ndarray, item: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(int(item))
        return spec_augment(array, kind, rng, settings).astype(np.float32)

    out = tf.numpy_function(_apply, [spec, tf.cast(seed, tf.int64)], tf.float32, stateful=False)
    out.set_shape(spec.shape)
    return out
