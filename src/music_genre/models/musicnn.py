# Over 400 lines: one network rebuilt from its checkpoint, front end to embeddings.
"""musicnn (Pons & Serra, 2019) rebuilt in Keras 3, fed the pretrained weights its wheel ships.

The ``musicnn`` 0.1.0 wheel holds TF1 checkpoints of networks trained to tag music: MSD_musicnn
(the Million Song Dataset's 50 most frequent tags, many of them genres) and MTT_musicnn
(MagnaTagATune's 50 tags). Its own Python code is TF1 graph code that cannot run on TF 2.21, and
its metadata pins numpy < 1.17, so the project installs it with ``pip install --no-deps
musicnn==0.1.0`` and reads only its checkpoint files. This module rebuilds the same forward
graph (musicnn's ``models.build_musicnn``) with Keras layers and copies the checkpoint's values
into them; ``tests/test_musicnn.py`` runs the original TF1 graph from the shipped ``.meta`` on
the same input and checks the outputs agree.

Per 187-frame patch (~3 s) the network gives three cut levels:

- ``pooled``: the mid-end's 753 channels pooled over time, max and mean interleaved (max, mean,
  max, mean, ...: the original stacks both poolings on a trailing axis before flattening), 1,506;
- ``penultimate``: the 200-unit dense layer after its batch norm, musicnn's "penultimate"
  embedding;
- ``tags``: the 50 tag probabilities (sigmoid).

A track's embedding at each cut is the mean over its patches (musicnn's own tagger averages
the taggram the same way).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # keras is imported lazily: importing TensorFlow costs seconds
    import keras

# musicnn's configuration.py and the checkpoints' config.json: 16 kHz mono, 512-point FFT, hop
# 256, 96 mel bands; patches of 187 frames = librosa.time_to_frames(3 s) + 1.
MUSICNN_SETTINGS: dict[str, Any] = {
    "sample_rate": 16000,
    "n_fft": 512,
    "hop_length": 256,
    "n_mels": 96,
    "patch_frames": 187,
}

CUT_LEVELS: tuple[str, ...] = ("penultimate", "pooled", "tags")
CUT_DIMENSIONS: dict[str, int] = {"penultimate": 200, "pooled": 1506, "tags": 50}

# Tag names, in the order of the networks' 50 outputs (musicnn/configuration.py, verbatim).
MSD_LABELS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip
MTT_LABELS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip

# The musicnn-architecture checkpoints this module can rebuild -> their tag names.
MUSICNN_MODELS: dict[str, tuple[str, ...]] = {
    "MSD_musicnn": MSD_LABELS,
    "MTT_musicnn": MTT_LABELS,
}

INSTALL_HINT = (
    "install it with `pip install --no-deps musicnn==0.1.0` (the Makefile's install step does)"
)

# tf.compat.v1.layers.batch_normalization's default epsilon, used by every musicnn batch norm.
_BN_EPSILON = 1e-3


# --------------------------------------------------------------------------- front end
def musicnn_log_mel(signal: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """musicnn's input representation of a 16 kHz mono signal: (frames, 96) float32.

    ``librosa.feature.melspectrogram`` with musicnn's settings (Hann window, power 2, Slaney
    mel filters: librosa's defaults), computed in numpy by
    :func:`music_genre.audio.spectrograms.mel_power_spectrogram` (equal to librosa's: importing
    librosa costs prediction seconds), and ``log10(10000·x + 1)``. Two deliberate choices:
    ``pad_mode="reflect"`` is what ``center=True`` padded with in the librosa (0.6/0.7) musicnn
    was trained with (librosa 0.10 changed the default to zeros), and the compression runs in
    float32: musicnn cast to float16 first, which under NumPy 2 overflows in ``10000·x``.
    """
    from music_genre.audio.spectrograms import mel_power_spectrogram

    if sample_rate != MUSICNN_SETTINGS["sample_rate"]:
        raise ValueError(
            f"musicnn's front end needs {MUSICNN_SETTINGS['sample_rate']} Hz audio, got "
            f"{sample_rate} Hz: resample first (musicnn_embeddings does it for you)"
        )
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim != 1 or signal.size == 0:
        raise ValueError(
            f"musicnn's front end needs a non-empty mono signal, got shape {signal.shape}"
        )
    mel = mel_power_spectrogram(
        signal,
        sample_rate,
        MUSICNN_SETTINGS["n_fft"],
        MUSICNN_SETTINGS["hop_length"],
        MUSICNN_SETTINGS["n_mels"],
        pad_mode="reflect",
    )
    return np.log10(10000.0 * mel.T.astype(np.float32) + 1.0).astype(np.float32)


def musicnn_patches(
    log_mel: np.ndarray, patch_frames: int = 187, pad_mode: str = "repeat"
) -> np.ndarray:
    """Cut (frames, 96) into non-overlapping (n, patch_frames, 96) patches, musicnn's batching.

    The last partial patch is dropped, as musicnn's extractor does. A clip shorter than one
    patch is padded to one: ``repeat`` loops it (musicnn's training used "repeat-pad" for short
    clips), ``zeros`` appends silence (0 is log10(1), i.e. zero energy).
    """
    log_mel = np.asarray(log_mel, dtype=np.float32)
    if log_mel.ndim != 2 or log_mel.shape[0] == 0:
        raise ValueError(f"expected a (frames, mel bands) spectrogram, got shape {log_mel.shape}")
    if patch_frames < 1:
        raise ValueError(f"patch_frames must be a positive number of frames, got {patch_frames}")
    if pad_mode not in ("repeat", "zeros"):
        raise ValueError(f"pad_mode must be 'repeat' or 'zeros', got {pad_mode!r}")
    frames = log_mel.shape[0]
    if frames < patch_frames:
        if pad_mode == "repeat":
            reps = int(np.ceil(patch_frames / frames))
            log_mel = np.tile(log_mel, (reps, 1))[:patch_frames]
        else:
            log_mel = np.pad(log_mel, ((0, patch_frames - frames), (0, 0)))
        frames = patch_frames
    n_patches = frames // patch_frames
    return np.ascontiguousarray(
        log_mel[: n_patches * patch_frames].reshape(n_patches, patch_frames, log_mel.shape[1])
    )


# --------------------------------------------------------------------------- the network
def checkpoint_dir(model_name: str = "MSD_musicnn") -> Path:
    """Folder of a checkpoint shipped in the ``musicnn`` wheel (a clear error when absent)."""
    if model_name not in MUSICNN_MODELS:
        raise ValueError(
            f"unknown musicnn model {model_name!r}; choose one of {sorted(MUSICNN_MODELS)}"
        )
    import importlib.resources

    try:
        root = importlib.resources.files("musicnn")
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"the musicnn package (its pretrained weights) is not installed: {INSTALL_HINT}"
        ) from error
    folder = Path(str(root / model_name))
    if not (folder / ".index").is_file():
        raise FileNotFoundError(
            f"{folder}: no musicnn checkpoint there (expected .index and .data files); "
            f"reinstall musicnn: {INSTALL_HINT}"
        )
    return folder


def read_checkpoint(model_name: str = "MSD_musicnn") -> dict[str, np.ndarray]:
    """The checkpoint's model variables by name (Adam slots and step counters left out)."""
    import tensorflow as tf

    # The trailing slash matters: the checkpoint's file prefix is the empty name inside the
    # folder (".index"); tf.train.load_checkpoint fails on the stored absolute training path.
    reader = tf.compat.v1.train.NewCheckpointReader(str(checkpoint_dir(model_name)) + "/")
    names = [
        name
        for name in reader.get_variable_to_shape_map()
        if "Adam" not in name and name not in ("beta1_power", "beta2_power")
    ]
    return {name: reader.get_tensor(name) for name in sorted(names)}


def build_musicnn_model(
    num_classes: int = 50,
    num_filt_midend: int = 64,
    num_units_backend: int = 200,
    name: str = "musicnn",
) -> keras.Model:
    """The musicnn graph as a Keras model with random weights, layers named as the checkpoint's
    variables (creation order of ``tf.compat.v1.layers``). Input (batch, frames, 96) log-mel;
    outputs a dict {"pooled", "penultimate", "tags"}. Call it with ``training=False``."""
    import keras
    from keras import layers, ops

    n_mels = MUSICNN_SETTINGS["n_mels"]
    front_filters = int(1.6 * 128)  # 204 timbral filters per kernel shape
    tempo_filters = int(1.6 * 32)  # 51 temporal filters per kernel length

    def batch_norm(index: int) -> layers.BatchNormalization:
        suffix = "" if index == 0 else f"_{index}"
        return layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"batch_normalization{suffix}")

    def conv(index: int, filters: int, kernel: tuple[int, int], padding: str) -> layers.Conv2D:
        suffix = "" if index == 0 else f"_{index}"
        return layers.Conv2D(
            filters, kernel, padding=padding, activation="relu", name=f"conv2d{suffix}"
        )

    def pad_time(x: Any) -> Any:
        # "same" in time for the 7-frame kernels, done by hand as the original does
        return layers.ZeroPadding2D(padding=((3, 3), (0, 0)))(x)

    spectrogram = keras.Input(shape=(None, n_mels), name="log_mel")
    x = ops.expand_dims(spectrogram, 3)
    x = batch_norm(0)(x)

    # front end: timbral (7 frames x 40% / 70% of the mel bands) and temporal (128/64/32
    # frames x 1 band) filters, each max-pooled over the whole frequency axis
    x_pad = pad_time(x)
    front = []
    for index, bands in ((0, int(0.4 * n_mels)), (1, int(0.7 * n_mels))):
        y = conv(index, front_filters, (7, bands), "valid")(x_pad)
        y = batch_norm(index + 1)(y)
        front.append(ops.max(y, axis=2))
    for index, length in ((2, 128), (3, 64), (4, 32)):
        y = conv(index, tempo_filters, (length, 1), "same")(x)
        y = batch_norm(index + 1)(y)
        front.append(ops.max(y, axis=2))
    front_features = ops.concatenate(front, axis=2)  # (batch, frames, 561)

    # mid end: three 7-frame convolutions over all channels, the last two residual
    front_4d = ops.expand_dims(front_features, 3)
    y = conv(5, num_filt_midend, (7, int(front_4d.shape[2])), "valid")(pad_time(front_4d))
    mid1 = ops.transpose(batch_norm(6)(y), (0, 1, 3, 2))
    y = conv(6, num_filt_midend, (7, num_filt_midend), "valid")(pad_time(mid1))
    mid2 = ops.add(ops.transpose(batch_norm(7)(y), (0, 1, 3, 2)), mid1)
    y = conv(7, num_filt_midend, (7, num_filt_midend), "valid")(pad_time(mid2))
    mid3 = ops.add(ops.transpose(batch_norm(8)(y), (0, 1, 3, 2)), mid2)
    mid_features = ops.concatenate([front_4d, mid1, mid2, mid3], axis=2)  # (batch, frames, 753, 1)

    # back end: max and mean over time stacked on the last axis, so flattening interleaves them
    pooled = ops.concatenate(
        [ops.max(mid_features, axis=1), ops.mean(mid_features, axis=1)], axis=2
    )
    pooled = layers.Flatten(name="pooled")(pooled)
    y = batch_norm(9)(pooled)
    y = layers.Dense(num_units_backend, activation="relu", name="dense")(y)
    penultimate = batch_norm(10)(y)
    logits = layers.Dense(num_classes, name="dense_1")(penultimate)
    tags = ops.sigmoid(logits)
    return keras.Model(
        spectrogram, {"pooled": pooled, "penultimate": penultimate, "tags": tags}, name=name
    )


def load_musicnn(model_name: str = "MSD_musicnn") -> keras.Model:
    """The Keras rebuild of a shipped musicnn checkpoint with its pretrained weights.

    The model's ``name`` is ``model_name``; ``tag_names(model.name)`` gives its tag names.
    Every model variable of the checkpoint must land in exactly one layer weight of matching
    shape, otherwise this raises (a silent partial load would give meaningless embeddings).
    """
    values = read_checkpoint(model_name)
    model = build_musicnn_model(num_classes=len(MUSICNN_MODELS[model_name]), name=model_name)
    fields = {
        "Conv2D": ("kernel", "bias"),
        "Dense": ("kernel", "bias"),
        "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    }
    used: set[str] = set()
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in fields:
            continue
        weights = []
        for field in fields[kind]:
            key = f"{layer.name}/{field}"
            if key not in values:
                raise ValueError(f"{model_name} checkpoint has no variable {key!r}")
            weights.append(values[key])
            used.add(key)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [w.shape for w in weights] != expected:
            raise ValueError(
                f"{model_name}: layer {layer.name} expects weights {expected}, the checkpoint "
                f"has {[w.shape for w in weights]}"
            )
        layer.set_weights(weights)
    unused = sorted(set(values) - used)
    if unused:
        raise ValueError(
            f"{model_name}: checkpoint variables not loaded into the rebuild: {unused}"
        )
    return model


def tag_names(model_name: str = "MSD_musicnn") -> tuple[str, ...]:
    """The 50 tag names of a musicnn model, in output order."""
    if model_name not in MUSICNN_MODELS:
        raise ValueError(
            f"unknown musicnn model {model_name!r}; choose one of {sorted(MUSICNN_MODELS)}"
        )
    return MUSICNN_MODELS[model_name]


# --------------------------------------------------------------------------- embeddings
# Patches per forward pass: one 29.7-s clip. The first convolutions' activations are ~9 MB per
# patch, so larger calls spill out of the 32 MB L3 cache: on 2 cores calls of 36-144 patches
# ran slower per patch than calls of 9 (benchmarks/backbones.py, "batched" vs "single").
MAX_PATCHES_PER_CALL = 9


def musicnn_forward(model: keras.Model) -> Any:
    """The model as a compiled inference function of (n, 187, 96) float32 patches, built once
    per model and kept on it: one graph for every batch size, batch norm in inference mode."""
    forward = getattr(model, "_music_genre_forward", None)
    if forward is None:
        import tensorflow as tf

        spec = tf.TensorSpec(
            (None, MUSICNN_SETTINGS["patch_frames"], MUSICNN_SETTINGS["n_mels"]), tf.float32
        )
        forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        model._music_genre_forward = forward
    return forward


def musicnn_patch_outputs(
    patches: np.ndarray, model: keras.Model, batch_size: int = MAX_PATCHES_PER_CALL
) -> dict[str, np.ndarray]:
    """Run the network on (n, frames, 96) patches -> {cut: (n, dim)} float32 arrays (the one
    cut level of an exported network: ``music_genre.models.backbones.export_cut_network``).

    Patches of the standard 187 frames go through :func:`musicnn_forward` (a graph traced once);
    other lengths through ``predict_on_batch``. A patch's outputs do not depend on the other
    patches of its call except in float32 rounding (oneDNN's blocking differs with the position
    in the batch: ~1 ulp, see tests/test_musicnn_batching.py)."""
    patches = np.asarray(patches, dtype=np.float32)
    if patches.ndim != 3 or patches.shape[0] == 0:
        raise ValueError(f"expected (patches, frames, 96) log-mel patches, got {patches.shape}")
    standard = patches.shape[1:] == (MUSICNN_SETTINGS["patch_frames"], MUSICNN_SETTINGS["n_mels"])
    exported_cut = _exported_cut_level(model)
    if exported_cut is not None:  # one cut level's ONNX export (music_genre.models.backbones)
        if not standard:
            raise ValueError(
                f"the exported musicnn reads patches of {MUSICNN_SETTINGS['patch_frames']} "
                f"frames, got {patches.shape[1:]}"
            )
        cuts: tuple[str, ...] = (exported_cut,)
        call = lambda x: {exported_cut: model(x)}  # noqa: E731
    else:
        cuts = CUT_LEVELS
        call = musicnn_forward(model) if standard else model.predict_on_batch
    parts: dict[str, list[np.ndarray]] = {cut: [] for cut in cuts}
    for start in range(0, patches.shape[0], batch_size):
        outputs = call(patches[start : start + batch_size])
        for cut in cuts:
            parts[cut].append(np.asarray(outputs[cut], dtype=np.float32))
    return {cut: np.concatenate(parts[cut], axis=0) for cut in cuts}


def _exported_cut_level(model: Any) -> str | None:
    """The cut level an exported musicnn network gives (OnnxModel metadata), None for Keras."""
    if getattr(model, "runtime", None) != "onnxruntime":
        return None
    return str(model.metadata["cut_level"])


def musicnn_signal_patches(signal: np.ndarray, pad_mode: str = "repeat") -> np.ndarray:
    """musicnn's front end of a 16 kHz mono signal: log-mel -> (n, 187, 96) patches. Cheap to
    pickle, so worker processes run it next to decoding (:func:`musicnn_track_embeddings`
    then batches the patches of many tracks into one forward pass)."""
    return musicnn_patches(
        musicnn_log_mel(signal, MUSICNN_SETTINGS["sample_rate"]),
        MUSICNN_SETTINGS["patch_frames"],
        pad_mode,
    )


def musicnn_track_embeddings(
    track_patches: Sequence[np.ndarray],
    model: keras.Model,
    batch_size: int = MAX_PATCHES_PER_CALL,
) -> list[dict[str, np.ndarray]]:
    """Per track {cut: its patches' outputs averaged}: the patches of all tracks, concatenated,
    go through the network ``batch_size`` at a time (calls do not follow track boundaries)."""
    if not track_patches:
        return []
    counts = [int(np.shape(p)[0]) for p in track_patches]
    outputs = musicnn_patch_outputs(np.concatenate(track_patches, axis=0), model, batch_size)
    bounds = np.cumsum([0, *counts])
    return [
        {cut: values[lo:hi].mean(axis=0) for cut, values in outputs.items()}
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def musicnn_embeddings(
    audio: str | Path | np.ndarray,
    model: keras.Model,
    sample_rate: int = 16000,
    duration_s: float | None = None,
    pad_mode: str = "repeat",
) -> dict[str, np.ndarray]:
    """Per-track musicnn embeddings: {cut: patch outputs averaged over patches}.

    ``audio`` is a path (decoded to 16 kHz mono by ``music_genre.audio.decode.load_audio``, cut to
    ``duration_s`` when given) or a mono signal at ``sample_rate`` (resampled to 16 kHz when
    different, with the same soxr resampler). Returns ``penultimate`` (200,), ``pooled``
    (1506,) and ``tags`` (50,), float32.
    """
    target_rate = MUSICNN_SETTINGS["sample_rate"]
    if isinstance(audio, (str, Path)):
        from music_genre.audio.decode import load_audio

        signal, _ = load_audio(audio, sample_rate=target_rate, mono=True, duration_s=duration_s)
    else:
        signal = np.asarray(audio, dtype=np.float32)
        if signal.ndim != 1:
            raise ValueError(f"expected a mono signal (1-D), got shape {signal.shape}")
        if sample_rate != target_rate:
            import librosa

            signal = librosa.resample(signal, orig_sr=sample_rate, target_sr=target_rate)
        if duration_s is not None:
            signal = signal[: int(round(duration_s * target_rate))]
    return musicnn_track_embeddings([musicnn_signal_patches(signal, pad_mode)], model)[0]


def top_tags(
    tag_probabilities: np.ndarray, names: Sequence[str], k: int = 5
) -> list[tuple[str, float]]:
    """The ``k`` most likely tags as (name, probability), most likely first."""
    probabilities = np.asarray(tag_probabilities, dtype=np.float64).reshape(-1)
    if probabilities.size != len(names):
        raise ValueError(f"{probabilities.size} tag probabilities but {len(names)} tag names")
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(names[i], float(probabilities[i])) for i in order]
