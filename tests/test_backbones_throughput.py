"""The faster embedding paths compute the same features: musicnn patches of many tracks in one
compiled forward pass equal each track embedded alone (float32 rounding), extraction gives the
same bits for any number of decoding workers (the network sees the same batches), and the
ImageNet backbones' compiled call equals Keras' eager call. Small generated audio and a tiny
network; no timing assertions."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import soundfile as sf

from music_genre.models import backbones
from music_genre.models.backbones import (
    AudioEmbeddingExtractor,
    AudioWindow,
    BackboneSpec,
    CutLevelFeatureExtractor,
    compiled_call,
    get_backbone,
    resolve_weights,
)
from music_genre.pipelines.transfer.extraction import AudioEmbeddingJob, in_task_order
from tests.helpers.numeric import assert_same_network_output

pytestmark = pytest.mark.numeric  # float results of TensorFlow / ONNX Runtime: make test-numeric

RATE = 16000


def _signal(seed: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    tone = np.sin(2 * np.pi * (110 + 40 * seed) * t) + 0.2 * rng.normal(size=t.size)
    return (0.3 * tone / np.abs(tone).max()).astype(np.float32)


@pytest.fixture(scope="module")
def musicnn_extractor():
    pytest.importorskip("musicnn", reason="musicnn's weights: pip install --no-deps musicnn==0.1.0")
    spec = get_backbone("musicnn")
    return AudioEmbeddingExtractor(spec, resolve_weights("msd", "musicnn"), spec.cut_levels)


@pytest.mark.slow
def test_musicnn_tracks_batched_together_equal_each_track_alone(musicnn_extractor):
    # 2 patches, 1 patch, and a clip shorter than a patch (looped): 4 patches in one call
    signals = [_signal(0, 6.5), _signal(1, 3.5), _signal(2, 1.2)]
    inputs = [musicnn_extractor.front_end(s) for s in signals]
    assert [len(p) for p in inputs] == [2, 1, 1]
    together = musicnn_extractor.embed_front_ends(inputs)
    for signal, row in zip(signals, together, strict=True):
        alone = musicnn_extractor.embed(signal)
        for cut in musicnn_extractor.cut_levels:
            assert_same_network_output(row[cut], alone[cut], musicnn_extractor.model)
    # different tracks stay different (the per-track split of the batch is right)
    assert not np.allclose(together[0]["penultimate"], together[1]["penultimate"])


@pytest.mark.slow
def test_musicnn_compiled_forward_equals_keras_and_traces_once(musicnn_extractor):
    from music_genre.models.musicnn import musicnn_forward, musicnn_patch_outputs

    model = musicnn_extractor.model
    patches = np.concatenate([musicnn_extractor.front_end(_signal(i, 6.5)) for i in range(3)])
    reference = model.predict_on_batch(patches)
    outputs = musicnn_patch_outputs(patches, model, batch_size=4)  # calls of 4 and 2 patches
    for cut, values in outputs.items():
        assert_same_network_output(values, np.asarray(reference[cut]), model)
    musicnn_patch_outputs(patches[:1], model)
    assert musicnn_forward(model).experimental_get_tracing_count() == 1


def test_audio_front_end_honours_the_pad_mode(musicnn_extractor):
    short = _signal(3, 1.0)  # shorter than one 3-s patch
    looped = musicnn_extractor.front_end(short)
    silent = AudioEmbeddingExtractor(
        musicnn_extractor.spec,
        musicnn_extractor.weights,
        musicnn_extractor.cut_levels,
        AudioWindow(pad_mode="zeros"),
    ).front_end(short)
    assert looped.shape == silent.shape == (1, 187, 96)
    assert (silent[0, -20:] == 0).all() and (looped[0, -20:] > 0).any()


def test_in_task_order_restores_the_order_as_soon_as_it_can():
    arrived = [("c", 3), ("a", 1), ("d", 4), ("b", 2)]
    seen: list[str] = []

    def results():
        for key, value in arrived:
            seen.append(key)
            yield key, value

    out = []
    for key, value in in_task_order(results(), ["a", "b", "c", "d"]):
        out.append((key, value, len(seen)))
    # "a" goes out as soon as it arrives (2nd), "b" only after it arrived (4th)
    assert out == [("a", 1, 2), ("b", 2, 4), ("c", 3, 4), ("d", 4, 4)]


@pytest.mark.slow
def test_musicnn_extraction_is_identical_for_any_worker_count(tmp_path, musicnn_extractor):
    paths = {}
    for i, seconds in enumerate((3.5, 6.5, 3.5, 1.5, 6.5)):
        path = tmp_path / f"{i}.wav"
        sf.write(path, _signal(10 + i, seconds), RATE)
        paths[str(i)] = str(path)
    extractor = AudioEmbeddingExtractor(
        musicnn_extractor.spec,
        musicnn_extractor.weights,
        ("penultimate", "tags"),
        AudioWindow(duration_s=6.5),
    )
    extractor._model = musicnn_extractor.model  # the same network, built once for the test

    def extract(workers: int) -> dict[str, np.ndarray]:
        job = AudioEmbeddingJob(
            key="k",
            description={},
            track_ids=list(paths),
            paths=paths,
            extractor=extractor,
            workers=workers,
            batch_size=2,
            timing_runs=1,
        )
        batches = list(job.run(set()))
        ids = [t for batch in batches for t in batch.item_ids]
        assert ids == list(paths)  # track order, batches of 2
        assert set(job.measurements["extract_ms_per_image"]) == {"penultimate", "tags"}
        return {
            cut: np.concatenate([batch.features[cut] for batch in batches])
            for cut in extractor.cut_levels
        }

    one, two = extract(1), extract(2)
    for cut in extractor.cut_levels:
        np.testing.assert_array_equal(one[cut], two[cut])
    alone = extractor(paths["1"])
    # alone: a batch of one where the job ran batches of two (float32 rounding may differ)
    assert_same_network_output(one["penultimate"][1], alone["penultimate"][0], extractor.model)


def _tiny_net(weights):
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu", name="relu")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(8, name="dense")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="top")(x))


def test_imagenet_style_backbone_compiled_call_equals_eager(monkeypatch):
    tiny = BackboneSpec(
        name="tinybn",
        build=_tiny_net,
        preprocess=lambda x: x / 127.5 - 1.0,
        cut_levels=("relu", "dense"),
        input_size=(32, 32),
    )
    monkeypatch.setitem(backbones.BACKBONES, "tinybn", tiny)
    extractor = CutLevelFeatureExtractor(tiny, resolve_weights(None, "tinybn", seed=0), ("relu",))
    rng = np.random.default_rng(0)
    spectrograms = [rng.uniform(-80, 0, (20, 40 + i)).astype(np.float32) for i in range(3)]
    images = extractor.prepare(spectrograms)
    compiled = extractor.features_of_inputs(images)["relu"]
    eager = np.asarray(extractor.cut_model(images, training=False)).reshape(3, -1)
    assert_same_network_output(compiled, eager, extractor.cut_model)
    assert compiled.shape == (3, 30 * 30 * 4)

    call = compiled_call(extractor.cut_model)
    for n in (1, 2, 3):
        call(images[:n])
    assert call.experimental_get_tracing_count() == 1
    timings = extractor.time_single_image(spectrograms[0], runs=2)
    assert set(timings) == {"relu"} and timings["relu"] > 0
