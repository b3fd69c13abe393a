"""A tiny image backbone for the transfer tests, in a module that Dask worker processes import
cheaply: a ``BackboneSpec`` travels to a worker inside its extractor, its functions by
reference, so the worker imports this module to build the network."""

from __future__ import annotations

import numpy as np

from music_genre.models.backbones import BackboneSpec

BUILDS: list[str | None] = []  # the weights argument of every build in this process


def _tiny_net(weights):
    import keras

    BUILDS.append(weights)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(4, name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(16, activation="relu", name="dense")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="top")(x))


def _to_unit_range(x: np.ndarray) -> np.ndarray:
    return x / 127.5 - 1.0


TINY = BackboneSpec(
    name="tinynet",
    build=_tiny_net,
    preprocess=_to_unit_range,
    cut_levels=("pool", "dense"),
    input_size=(32, 32),
)
