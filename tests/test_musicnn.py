"""musicnn: the Keras rebuild against the original TF1 graph, and the front end's shapes.

The reference is musicnn's own trained graph: the forward part of the shipped ``.meta`` (the
graph musicnn was trained with) with the checkpoint's values in place of its variables, run in
a ``tf.compat.v1`` session. ``import_meta_graph`` cannot load the whole file on TF 2.21 (stale
shape attributes on the gradient nodes), so only the nodes the outputs depend on are kept.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf

from music_genre.audio.decode import load_audio
from music_genre.models.musicnn import (
    CUT_DIMENSIONS,
    CUT_LEVELS,
    MSD_LABELS,
    MTT_LABELS,
    MUSICNN_SETTINGS,
    checkpoint_dir,
    load_musicnn,
    musicnn_embeddings,
    musicnn_log_mel,
    musicnn_patch_outputs,
    musicnn_patches,
    read_checkpoint,
    tag_names,
    top_tags,
)
from tests.helpers.numeric import assert_same_network_output

pytestmark = pytest.mark.numeric  # float results of TensorFlow / ONNX Runtime: make test-numeric

SR = MUSICNN_SETTINGS["sample_rate"]

# Tensors of the original training graph: input, is_training flag, and the three cut levels.
TF1_INPUT = "model/Placeholder:0"
TF1_IS_TRAINING = "model/Placeholder_2:0"
TF1_OUTPUTS = {
    "tags": "model/Sigmoid:0",
    "penultimate": "model/batch_normalization_10/batchnorm/add_1:0",
    "pooled": "model/Flatten/flatten/Reshape:0",
}


def _music_like_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """A deterministic mix of notes, a beat and noise: realistic enough to excite every layer."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    signal = np.zeros_like(t)
    for i, start in enumerate(np.arange(0.0, seconds, 0.5)):
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        note = (t >= start) & (t < start + 0.45)
        envelope = np.exp(-4.0 * (t[note] - start))
        for harmonic in (1, 2, 3):
            signal[note] += envelope * np.sin(2 * np.pi * f0 * harmonic * t[note]) / harmonic
        if i % 2 == 0:  # kick-like thump every second beat
            kick = (t >= start) & (t < start + 0.1)
            signal[kick] += np.sin(2 * np.pi * 60 * t[kick]) * np.exp(-30 * (t[kick] - start))
    signal += 0.02 * rng.standard_normal(t.size)
    return (0.3 * signal / np.abs(signal).max()).astype(np.float32)


def _tf1_reference(model_name: str):
    """A function patches -> {cut: outputs} running musicnn's original graph and weights."""
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    folder = checkpoint_dir(model_name)
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((folder / ".meta").read_bytes())
    nodes = {node.name: node for node in meta.graph_def.node}

    # keep only what the outputs depend on (data and control inputs), no gradients/optimizer
    keep, stack = set(), [name.split(":")[0] for name in TF1_OUTPUTS.values()]
    while stack:
        name = stack.pop()
        if name in keep:
            continue
        keep.add(name)
        stack.extend(inp.lstrip("^").split(":")[0] for inp in nodes[name].input)

    values = read_checkpoint(model_name)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.versions.CopyFrom(meta.graph_def.versions)
    for node in meta.graph_def.node:  # original order
        if node.name not in keep:
            continue
        new = graph_def.node.add()
        if node.op == "VariableV2":  # variable -> constant holding the checkpoint's value
            new.name, new.op = node.name, "Const"
            new.attr["dtype"].type = node.attr["dtype"].type
            new.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(values[node.name]))
        else:
            new.CopyFrom(node)
            new.attr.pop("_output_shapes", None)  # stale TF 1.12 shape annotations
    assert {n.name for n in graph_def.node if n.op == "Const" and n.name in values} == set(
        values
    ), "every checkpoint variable must feed the reference graph"

    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)

    def run(patches: np.ndarray) -> dict[str, np.ndarray]:
        outputs = session.run(
            list(TF1_OUTPUTS.values()), {TF1_INPUT: patches, TF1_IS_TRAINING: False}
        )
        return dict(zip(TF1_OUTPUTS, outputs, strict=True))

    return run


@pytest.fixture(scope="module")
def msd_model():
    return load_musicnn("MSD_musicnn")


@pytest.fixture(scope="module")
def music_patches() -> np.ndarray:
    # 7 s -> 438 frames -> 2 full patches (the partial third one is dropped)
    return musicnn_patches(musicnn_log_mel(_music_like_signal(7.0)))


@pytest.mark.parametrize("model_name", ["MSD_musicnn", "MTT_musicnn"])
@pytest.mark.slow
def test_rebuild_matches_original_tf1_graph(model_name, msd_model, music_patches):
    model = msd_model if model_name == "MSD_musicnn" else load_musicnn(model_name)
    # real music-like patches plus one patch of a different clip and one of uniform noise
    noise = np.random.default_rng(1).uniform(0, 3, (1, 187, 96)).astype(np.float32)
    other = musicnn_patches(musicnn_log_mel(_music_like_signal(3.0, seed=5)))
    patches = np.concatenate([music_patches, other, noise])

    reference = _tf1_reference(model_name)(patches)
    rebuilt = musicnn_patch_outputs(patches, model)

    for cut in CUT_LEVELS:
        assert rebuilt[cut].shape == reference[cut].shape == (4, CUT_DIMENSIONS[cut])
        # the reference is not degenerate: patches give different outputs
        assert np.ptp(reference[cut], axis=0).max() > 1e-3
        # TF1's graph and the Keras 3 rebuild: the same float32 network, other kernels
        assert_same_network_output(rebuilt[cut], reference[cut], model)


@pytest.mark.slow
def test_pooled_features_interleave_max_and_mean(msd_model, music_patches):
    pooled = musicnn_patch_outputs(music_patches, msd_model)["pooled"]
    maxima, means = pooled[:, 0::2], pooled[:, 1::2]
    # a temporal max is never below the temporal mean; channels constant over time (dead
    # units after batch norm) have max == mean, the others must show max > mean
    assert np.all(maxima >= means - 1e-5)
    assert (maxima > means + 1e-3).sum(axis=1).min() > 100
    # the other layout (all maxima, then all means) would break this ordering somewhere
    assert np.any(pooled[:, :753] < pooled[:, 753:] - 1e-3)


def test_front_end_shapes_and_patches():
    signal = _music_like_signal(7.0)
    log_mel = musicnn_log_mel(signal)
    # centred STFT: 1 + 112000 // 256 frames, 96 mel bands, log10(10000 x + 1) >= 0
    assert log_mel.shape == (1 + signal.size // 256, 96)
    assert log_mel.dtype == np.float32
    assert np.isfinite(log_mel).all() and log_mel.min() >= 0.0

    patches = musicnn_patches(log_mel)
    assert patches.shape == (2, 187, 96)  # 438 frames: 2 patches, 64 trailing frames dropped
    np.testing.assert_array_equal(patches[1], log_mel[187:374])

    # a loud signal would overflow float16 (musicnn's own cast); float32 stays finite
    assert np.isfinite(musicnn_log_mel(np.ones(SR, dtype=np.float32) * 0.9)).all()


@pytest.mark.parametrize("seconds", [29.7, 1.0, 0.05])
def test_front_end_equals_librosa(seconds):
    """The numpy front end (no librosa import in prediction) equals librosa's melspectrogram
    with musicnn's settings and the reflect padding it was trained with, bit for bit."""
    signal = _music_like_signal(seconds, seed=5).astype(np.float32)
    mel = librosa.feature.melspectrogram(
        y=signal,
        sr=SR,
        n_fft=MUSICNN_SETTINGS["n_fft"],
        hop_length=MUSICNN_SETTINGS["hop_length"],
        n_mels=MUSICNN_SETTINGS["n_mels"],
        pad_mode="reflect",
    )
    expected = np.log10(10000.0 * mel.T.astype(np.float32) + 1.0).astype(np.float32)
    np.testing.assert_array_equal(musicnn_log_mel(signal), expected)


def test_front_end_rejects_wrong_rate_and_empty_signal():
    with pytest.raises(ValueError, match="16000 Hz"):
        musicnn_log_mel(np.zeros(22050, dtype=np.float32), sample_rate=22050)
    with pytest.raises(ValueError, match="non-empty mono"):
        musicnn_log_mel(np.zeros(0, dtype=np.float32))


def test_short_clips_are_padded_to_one_patch():
    log_mel = musicnn_log_mel(_music_like_signal(1.0))  # 63 frames < 187
    assert log_mel.shape[0] == 63

    repeated = musicnn_patches(log_mel, pad_mode="repeat")
    assert repeated.shape == (1, 187, 96)
    np.testing.assert_array_equal(repeated[0, :63], log_mel)
    np.testing.assert_array_equal(repeated[0, 63:126], log_mel)
    np.testing.assert_array_equal(repeated[0, 126:], log_mel[:61])

    zeros = musicnn_patches(log_mel, pad_mode="zeros")
    assert zeros.shape == (1, 187, 96)
    np.testing.assert_array_equal(zeros[0, :63], log_mel)
    assert not zeros[0, 63:].any()

    for clip in (log_mel, np.tile(log_mel, (4, 1))):  # a bad pad_mode fails for any length
        with pytest.raises(ValueError, match="pad_mode"):
            musicnn_patches(clip, pad_mode="reflect")


def test_tag_names():
    assert len(MSD_LABELS) == len(MTT_LABELS) == 50
    assert len(set(MSD_LABELS)) == len(set(MTT_LABELS)) == 50
    assert tag_names("MSD_musicnn")[:3] == ("rock", "pop", "alternative")
    assert tag_names("MTT_musicnn")[:3] == ("guitar", "classical", "slow")
    with pytest.raises(ValueError, match="unknown musicnn model"):
        tag_names("MSD_vggish")


@pytest.mark.slow
def test_embeddings_from_path_and_signal_agree(tmp_path, msd_model):
    # a stereo 22.05 kHz file: decoded, mixed to mono and resampled to 16 kHz on the way in
    clip = _music_like_signal(8.0, seed=3)
    path = tmp_path / "clip.wav"
    stereo_22k = np.stack([clip, clip], axis=1)
    stereo_22k = librosa.resample(stereo_22k.T, orig_sr=SR, target_sr=22050).T
    sf.write(path, stereo_22k, 22050, subtype="FLOAT")  # no 16-bit rounding: exact comparison

    from_path = musicnn_embeddings(path, msd_model)
    signal, rate = load_audio(path, sample_rate=SR)
    assert rate == SR
    from_signal = musicnn_embeddings(signal, msd_model)
    resampled_here = musicnn_embeddings(stereo_22k.mean(axis=1), msd_model, sample_rate=22050)

    for cut in CUT_LEVELS:
        assert from_path[cut].shape == (CUT_DIMENSIONS[cut],)
        assert from_path[cut].dtype == np.float32
        np.testing.assert_allclose(from_path[cut], from_signal[cut], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(from_path[cut], resampled_here[cut], rtol=1e-4, atol=1e-5)
    assert np.all((from_path["tags"] > 0) & (from_path["tags"] < 1))

    # the track embedding is the mean of its patches' outputs
    patches = musicnn_patches(musicnn_log_mel(signal))
    assert patches.shape[0] == 2
    per_patch = musicnn_patch_outputs(patches, msd_model)
    np.testing.assert_allclose(
        from_signal["penultimate"], per_patch["penultimate"].mean(axis=0), rtol=1e-6
    )

    # duration_s cuts the clip: 3.5 s gives one patch only
    first = musicnn_embeddings(path, msd_model, duration_s=3.5)
    # the same first patch, alone where per_patch ran two: float32 rounding of other kernels
    assert_same_network_output(first["penultimate"], per_patch["penultimate"][0], msd_model)


def test_top_tags_orders_by_probability():
    probabilities = np.linspace(0.0, 0.49, 50)
    top = top_tags(probabilities, MSD_LABELS, k=3)
    assert [name for name, _ in top] == ["happy", "House", "sad"]
    assert top[0][1] == pytest.approx(0.49)
    with pytest.raises(ValueError, match="50 tag names"):
        top_tags(np.zeros(10), MSD_LABELS)


@pytest.mark.slow
def test_unknown_model_and_complete_weight_load(msd_model):
    with pytest.raises(ValueError, match="unknown musicnn model"):
        checkpoint_dir("MSD_vgg16")
    # every layer weight came from the checkpoint (random init would not match these)
    values = read_checkpoint("MSD_musicnn")
    kernel = msd_model.get_layer("dense_1").get_weights()[0]
    np.testing.assert_array_equal(kernel, values["dense_1/kernel"])
    assert msd_model.name == "MSD_musicnn"


def test_missing_musicnn_package_says_how_to_install(monkeypatch):
    import importlib.resources

    def not_installed(package):
        raise ModuleNotFoundError(f"No module named {package!r}")

    monkeypatch.setattr(importlib.resources, "files", not_installed)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps musicnn==0.1.0"):
        checkpoint_dir("MSD_musicnn")
