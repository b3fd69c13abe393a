"""A tiny untrained CNN predictor for tests of the prediction paths (not of the model)."""

from __future__ import annotations

import keras

from music_genre.serving import CnnPredictor


def tiny_cnn_predictor(class_names: list[str], settings, seed: int = 0) -> CnnPredictor:
    """Rescaling → global average pooling → softmax over the study's 128×1280 image, seeded."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((128, 1280, 1)),
            keras.layers.Rescaling(1 / 80.0),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(class_names), activation="softmax"),
        ]
    )
    return CnnPredictor(model=model, class_names=class_names, spectrogram_settings=settings)
