"""The CNN's settings per variant (:func:`cnn_settings`) and its tf.data streams: spectrograms
from the catalog's lazy stores, one batch in memory at a time, with fresh masks per epoch when
augmenting on the fly; shared by the Hyperband search (:mod:`.tuning`) and training
(:mod:`.nodes`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import pandas as pd

from music_genre.audio.augment import (
    MASK_KINDS,
    augmentation_settings,
    augmented_key,
    item_seed,
    spec_augment,
)
from music_genre.audio.spectrograms import spectrogram_tf_dataset
from music_genre.config import CnnParams, node_settings

Store = Mapping[str, Callable[[], np.ndarray]]
# the columns of the CNN's item table (select_cnn_items): one row per original or masked copy
ITEM_COLUMNS = ["key", "track_id", "genre", "label", "split", "copy"]


# ------------------------------------------------------------------------------------------------
# Settings
# ------------------------------------------------------------------------------------------------
def cnn_settings(params: Mapping[str, Any] | CnnParams, variant: str | None = None) -> CnnParams:
    """The node boundary: ``params:cnn`` as Kedro passes it (a dict) validated once into
    :class:`~music_genre.config.CnnParams` (a model passes through), with ``variant``'s own
    ``architecture`` and ``training`` applied when one is named."""
    settings = node_settings(CnnParams, params)
    return settings if variant is None else settings.for_variant(variant)


def _given(model: Any) -> dict[str, Any]:
    """The keys the configuration gave (defaults left out): what the training logs and the
    Hyperband fingerprint recorded before the settings were a model."""
    return model.model_dump(exclude_unset=True)


# ------------------------------------------------------------------------------------------------
# Streams
# ------------------------------------------------------------------------------------------------


def _add_channel(spec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return spec[..., np.newaxis]


class _FreshMask:
    """Zero-arg loader of a masked copy drawn anew at every call (on-the-fly augmentation):
    the original through :func:`music_genre.audio.augment.spec_augment`, the same implementation as
    the materialized copies, with a generator seeded by the copy's key (reproducible runs)."""

    def __init__(
        self, loader: Callable[[], np.ndarray], kind: str, key: str, settings: Mapping[str, Any]
    ) -> None:
        self._loader, self._kind, self._settings = loader, kind, dict(settings)
        self._rng = np.random.default_rng(item_seed(settings["seed"], key))

    def __call__(self) -> np.ndarray:
        spec = np.asarray(self._loader(), dtype=np.float32)
        return spec_augment(spec, self._kind, self._rng, self._settings)


def _training_stream(
    items: pd.DataFrame,
    log_mel_spectrograms: Store,
    augmented_spectrograms: Store,
    settings: CnnParams,
    augmentation_params: Mapping[str, Any],
    augmented: bool,
) -> tuple[Any, int]:
    """The training split as a shuffled tf.data stream: originals, plus for augmented variants
    two masked copies per track (read from ``augmented_spectrograms``, or drawn anew every
    epoch from the original when ``augmentation_mode`` is ``on_the_fly``)."""
    training = items[items["split"] == "training"]
    originals = training[training["copy"] == "original"]
    loaders: dict[str, Callable[[], np.ndarray]] = {
        k: log_mel_spectrograms[k] for k in originals["key"]
    }
    rows = originals
    if augmented:
        if settings.augmentation_mode == "materialized":
            copies = training[training["copy"] != "original"]
            if copies.empty:
                raise ValueError(
                    "No augmented spectrogram to train the augmented variants on: run the "
                    "augmentation pipeline first, or set cnn.augmentation_mode: on_the_fly"
                )
            loaders.update({k: augmented_spectrograms[k] for k in copies["key"]})
            rows = pd.concat([originals, copies])
        else:
            masking = augmentation_settings(augmentation_params)
            copies = []
            for row in originals.itertuples(index=False):
                for kind in MASK_KINDS:
                    key = augmented_key(row.track_id, kind)
                    loaders[key] = _FreshMask(log_mel_spectrograms[row.key], kind, key, masking)
                    copies.append({**row._asdict(), "key": key, "copy": kind})
            rows = pd.concat([originals, pd.DataFrame(copies, columns=ITEM_COLUMNS)])
    batch_size = settings.training.batch_size
    stream = spectrogram_tf_dataset(
        loaders,
        rows["key"].tolist(),
        rows["label"].to_numpy(),
        batch_size=batch_size,
        shuffle=True,
        seed=settings.seed,
        transform=_add_channel,
    )
    return _with_length(stream, len(rows), batch_size), len(rows)


def _with_length(stream: Any, n_items: int, batch_size: int) -> Any:
    """Tell Keras how many batches a generator-backed stream holds (progress, no warnings)."""
    import tensorflow as tf

    return stream.apply(tf.data.experimental.assert_cardinality(math.ceil(n_items / batch_size)))


def _split_stream(
    items: pd.DataFrame, log_mel_spectrograms: Store, split: str, batch_size: int
) -> tuple[Any, pd.DataFrame]:
    """One split's original spectrograms, in table order (never augmented, never shuffled)."""
    rows = items[(items["split"] == split) & (items["copy"] == "original")]
    stream = spectrogram_tf_dataset(
        log_mel_spectrograms,
        rows["key"].tolist(),
        rows["label"].to_numpy(),
        batch_size=batch_size,
        transform=_add_channel,
    )
    return _with_length(stream, len(rows), batch_size), rows


def _split_scores(
    model: keras.Model, stream: Any, labels: np.ndarray
) -> tuple[np.ndarray, float, float]:
    """A split's class probabilities, mean cross-entropy and accuracy: the evaluation of a
    trained variant (:mod:`.nodes`) and of each Hyperband trial's model (:mod:`.tuning`)."""
    probabilities = np.asarray(model.predict(stream, verbose=0))
    loss = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
    accuracy = np.mean(probabilities.argmax(axis=1) == labels)
    return probabilities, float(np.mean(np.asarray(loss))), float(accuracy)


def _input_shape(items: pd.DataFrame, log_mel_spectrograms: Store) -> tuple[int, int, int]:
    first = items.loc[items["copy"] == "original", "key"].iloc[0]
    return (*np.asarray(log_mel_spectrograms[first]()).shape, 1)


def _n_classes(items: pd.DataFrame) -> int:
    return int(items["label"].max()) + 1


def _early_stopping(settings: CnnParams) -> keras.callbacks.EarlyStopping:
    return keras.callbacks.EarlyStopping(**_given(settings.training.early_stopping))
