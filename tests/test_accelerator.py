"""Device logging and the mixed-precision switch (on this project's CPU-only machines)."""

from __future__ import annotations

import logging

import pytest

from music_genre.infra import accelerator

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.skipif(
    bool(tf.config.list_physical_devices("GPU")), reason="checks the CPU-only behaviour"
)


def test_the_log_says_the_run_computes_on_the_cpu(caplog):
    accelerator.log_compute_device.cache_clear()
    with caplog.at_level(logging.INFO, logger="music_genre.infra.accelerator"):
        line = accelerator.log_compute_device()
    assert "TensorFlow computes on the CPU" in line
    assert "dtype policy float32" in line
    assert line in caplog.text


def test_mixed_precision_is_refused_on_a_cpu_with_a_warning(caplog):
    import keras

    with caplog.at_level(logging.WARNING, logger="music_genre.infra.accelerator"):
        policy = accelerator.configure_precision(True)
    assert policy == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "runtime.mixed_precision: true is ignored: no GPU is visible" in caplog.text


def test_the_cnn_softmax_stays_float32_under_mixed_precision():
    import keras

    from music_genre.models.cnn import build_cnn

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_cnn(8, input_shape=(128, 160, 1))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("conv1").compute_dtype == "float16"
    assert model.get_layer("genre").compute_dtype == "float32"
    assert model.output.dtype == "float32"
