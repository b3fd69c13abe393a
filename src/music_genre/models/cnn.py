"""The study's CNN (after Kostrzewa et al., ICCS 2021), its Hyperband search space and the
input scaling that turns a dB log-mel spectrogram into the study's image.

The model reads a raw dB spectrogram ``(n_mels, frames, 1)`` = ``(128, 1280, 1)``; its first
layer, :class:`StudyImageScaling`, computes the study's 8-bit image in TF ops (per-spectrogram
min-max to 0..255, flipped so low frequencies are at the bottom, inverted, rounded), so every
saved model applies the same scaling in training, evaluation and prediction. The prediction
command imports this module (``keras.models.load_model`` then finds the registered layer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import keras_tuner
from keras import layers, ops

INPUT_SHAPE: tuple[int, int, int] = (128, 1280, 1)
IMAGE_SIZE: tuple[int, int] = (128, 128)

# FACTS.md: Kostrzewa et al.'s architecture as the study trained it.
STUDY_ARCHITECTURE: dict[str, Any] = {
    "filters": [64, 64, 128, 128],
    "kernel_size": 5,
    "dropout": 0.2,
    "learning_rate": 1e-3,
}

# FACTS.md: the study's Hyperband search space.
STUDY_SEARCH_SPACE: dict[str, Any] = {
    "kernel_size": {"min": 3, "max": 6},
    "filters": {"min": 32, "max": 256, "step": 1},
    "dropout": [0.2, 0.25, 0.5],
    "learning_rate": [1e-2, 1e-3, 1e-4],
}
N_CONV_BLOCKS = 4


@keras.saving.register_keras_serializable(package="music_genre")
class StudyImageScaling(layers.Layer):
    """dB spectrogram ``(batch, n_mels, frames, 1)`` -> the study's image on the 0..255 scale.

    Per example: ``255 - flip_frequency((x - min) / (max - min) * 255)``, rounded to integers
    when ``quantize`` (the study's CNN read 8-bit PNGs); a constant spectrogram maps to 255.
    Equals :func:`music_genre.audio.spectrograms.to_study_image` with the same ``quantize``.
    """

    def __init__(self, quantize: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.quantize = bool(quantize)

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, "float32")
        low = ops.min(x, axis=(1, 2, 3), keepdims=True)
        high = ops.max(x, axis=(1, 2, 3), keepdims=True)
        span = high - low
        # Same float32 operation order as to_study_image, so both give identical values.
        scaled = ops.where(span > 0, (x - low) / ops.where(span > 0, span, 1.0) * 255.0, 0.0)
        image = 255.0 - ops.flip(scaled, axis=1)
        return ops.round(image) if self.quantize else image

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "quantize": self.quantize}


def build_cnn(
    n_classes: int,
    filters: Sequence[int] = tuple(STUDY_ARCHITECTURE["filters"]),
    kernel_size: int = STUDY_ARCHITECTURE["kernel_size"],
    dropout: float = STUDY_ARCHITECTURE["dropout"],
    learning_rate: float = STUDY_ARCHITECTURE["learning_rate"],
    input_shape: Sequence[int] = INPUT_SHAPE,
    image_size: Sequence[int] = IMAGE_SIZE,
    quantize: bool = True,
    batch_norm_momentum: float = 0.99,
) -> keras.Model:
    """The study's CNN, compiled (Adam, sparse categorical cross-entropy, accuracy).

    dB spectrogram -> StudyImageScaling -> Resizing(128, 128) -> 4 x [Conv2D(k x k, ReLU,
    valid) -> BatchNormalization -> MaxPooling2D(2)] -> Flatten -> Dropout -> Dense(softmax).
    With the defaults and 8 classes: 735,944 trainable parameters. ``batch_norm_momentum``
    is Keras' default (the study's); the moving statistics that inference uses need a few
    hundred steps to settle at 0.99, which a tiny dataset never takes.
    """
    if len(filters) != N_CONV_BLOCKS:
        raise ValueError(
            f"filters needs {N_CONV_BLOCKS} values (one per conv block), got {filters}"
        )
    inputs = keras.Input(shape=tuple(input_shape), name="log_mel_db")
    x = StudyImageScaling(quantize=quantize, name="study_image")(inputs)
    x = layers.Resizing(int(image_size[0]), int(image_size[1]), name="resize")(x)
    for block, n_filters in enumerate(filters, start=1):
        x = layers.Conv2D(
            int(n_filters),
            int(kernel_size),
            activation="relu",
            padding="valid",
            name=f"conv{block}",
        )(x)
        x = layers.BatchNormalization(
            momentum=float(batch_norm_momentum), name=f"batch_norm{block}"
        )(x)
        x = layers.MaxPooling2D(2, name=f"max_pool{block}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(float(dropout), name="dropout")(x)
    # float32 softmax also under mixed precision (runtime.mixed_precision): float16 would
    # round small probabilities to 0 and make the loss unstable
    outputs = layers.Dense(int(n_classes), activation="softmax", name="genre", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name="kostrzewa_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(learning_rate)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def compiled_predictor(model: keras.Model) -> Any:
    """``model(x, training=False)`` as one traced TensorFlow graph for any batch size.

    ``model.predict`` rebuilds a data pipeline and a step loop on every call: ~0.1-0.3 s of
    overhead for a single clip, ten times the network's own cost on CPU. The traced function
    runs only the network (prediction, evaluation timing and the served model use it)."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec])


def predict_probabilities(predictor: Any, inputs: Any, batch_size: int = 64) -> Any:
    """Probabilities of ``inputs`` (numpy, batch first) through a :func:`compiled_predictor`,
    ``batch_size`` clips at a time."""
    import numpy as np

    inputs = np.asarray(inputs, dtype=np.float32)
    parts = [
        predictor(inputs[start : start + batch_size]).numpy()
        for start in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(parts) if parts else np.empty((0, 0), np.float32)


def trainable_parameters(model: keras.Model) -> int:
    return int(sum(int(ops.size(w)) for w in model.trainable_weights))


def architecture_from_hyperparameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperband's best values (``kernel_size``, ``filters_1..4``, ...) -> build_cnn kwargs."""
    return {
        "filters": [int(values[f"filters_{i}"]) for i in range(1, N_CONV_BLOCKS + 1)],
        "kernel_size": int(values["kernel_size"]),
        "dropout": float(values["dropout"]),
        "learning_rate": float(values["learning_rate"]),
    }


class StudyCnnHyperModel(keras_tuner.HyperModel):
    """The study's search space: one kernel size for all layers, filters per layer, dropout,
    learning rate (FACTS.md); anything else is the study's architecture."""

    def __init__(
        self,
        n_classes: int,
        search_space: Mapping[str, Any] = STUDY_SEARCH_SPACE,
        input_shape: Sequence[int] = INPUT_SHAPE,
        image_size: Sequence[int] = IMAGE_SIZE,
        quantize: bool = True,
        batch_norm_momentum: float = 0.99,
    ) -> None:
        super().__init__(name="study_cnn")
        self.batch_norm_momentum = batch_norm_momentum
        self.n_classes = n_classes
        self.search_space = search_space
        self.input_shape = tuple(input_shape)
        self.image_size = tuple(image_size)
        self.quantize = quantize

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        space = self.search_space
        kernel = hp.Int(
            "kernel_size", int(space["kernel_size"]["min"]), int(space["kernel_size"]["max"])
        )
        filters = [
            hp.Int(
                f"filters_{i}",
                int(space["filters"]["min"]),
                int(space["filters"]["max"]),
                step=int(space["filters"].get("step", 1)),
            )
            for i in range(1, N_CONV_BLOCKS + 1)
        ]
        dropout = hp.Choice("dropout", [float(v) for v in space["dropout"]])
        learning_rate = hp.Choice("learning_rate", [float(v) for v in space["learning_rate"]])
        return build_cnn(
            self.n_classes,
            filters=filters,
            kernel_size=kernel,
            dropout=dropout,
            learning_rate=learning_rate,
            input_shape=self.input_shape,
            image_size=self.image_size,
            quantize=self.quantize,
            batch_norm_momentum=self.batch_norm_momentum,
        )
