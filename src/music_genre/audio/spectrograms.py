# Over 400 lines: the log-mel front end, its image view and their settings change together.
"""Log-mel spectrograms as the study computed them, and the study's 8-bit image view of them."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

# The study's settings (FACTS.md); conf/base/parameters/spectrogram.yml holds the same values.
STUDY_SETTINGS: dict[str, Any] = {
    "sample_rate": 22050,
    "duration_s": 29.70,
    "n_fft": 2048,
    "hop_length": 512,
    "n_mels": 128,
    "fmax": 8000,
}


def n_frames(settings: Mapping[str, Any]) -> int:
    """Frames of a centred STFT over the window: 654,885 samples -> 1,280 frames."""
    samples = int(round(settings["sample_rate"] * settings["duration_s"]))
    return 1 + samples // settings["hop_length"]


# librosa.filters.mel's Slaney mel scale: linear below 1 kHz, logarithmic above.
_MEL_LINEAR_HZ = 200.0 / 3
_MEL_LOG_START_HZ = 1000.0
_MEL_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    start = _MEL_LOG_START_HZ / _MEL_LINEAR_HZ
    logarithmic = start + np.log(np.maximum(hz, 1e-300) / _MEL_LOG_START_HZ) / _MEL_LOG_STEP
    return np.where(hz >= _MEL_LOG_START_HZ, logarithmic, hz / _MEL_LINEAR_HZ)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    start = _MEL_LOG_START_HZ / _MEL_LINEAR_HZ
    logarithmic = _MEL_LOG_START_HZ * np.exp(_MEL_LOG_STEP * (mel - start))
    return np.where(mel >= start, logarithmic, _MEL_LINEAR_HZ * mel)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmax: float) -> np.ndarray:
    """``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmax=fmax)``
    (fmin 0, Slaney's scale and area normalisation), float32 ``(n_mels, 1 + n_fft // 2)``."""
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(fmax), n_mels + 2))
    fft_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    widths = np.diff(mel_hz)
    ramps = np.subtract.outer(mel_hz, fft_hz)
    weights = np.zeros((n_mels, len(fft_hz)), dtype=np.float32)
    for i in range(n_mels):
        rising, falling = -ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (mel_hz[2 : n_mels + 2] - mel_hz[:n_mels]))[:, None]
    weights.flags.writeable = False
    return weights


def mel_power_spectrogram(
    signal: np.ndarray,
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    fmax: float | None = None,
    pad_mode: str = "constant",
) -> np.ndarray:
    """``librosa.feature.melspectrogram(y=signal, sr=sample_rate, n_fft=n_fft,
    hop_length=hop_length, n_mels=n_mels, fmax=fmax, pad_mode=pad_mode)`` -> float32
    (n_mels, frames); ``fmax`` None is the Nyquist frequency, as in librosa.

    Computed in numpy, the same steps as librosa (centred STFT padded with ``pad_mode``, a
    periodic Hann window, power 2, Slaney mel filters): importing librosa (numba, scipy.signal)
    costs the prediction command 2-4 s of its start-up and worker processes as much. The study's
    spectrogram (tests/pipelines/spectrogram/test_spectrogram.py) and musicnn's front end
    (tests/test_musicnn.py) are held equal to librosa's."""
    y = np.asarray(signal, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"a mel spectrogram needs a 1-D mono signal, got shape {y.shape}")
    padded = np.pad(y, n_fft // 2, mode=pad_mode)  # type: ignore[call-overload]  # mode is a str
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # hann, fftbins=True
    # librosa: float64 products, rfft, stored as complex64, then |.|**2 in float32
    power = np.abs(np.fft.rfft(frames * window, axis=-1).astype(np.complex64)) ** 2
    filters = mel_filterbank(
        int(sample_rate), n_fft, int(n_mels), float(sample_rate) / 2 if fmax is None else fmax
    )
    return filters @ power.T


def log_mel_spectrogram(signal: np.ndarray, settings: Mapping[str, Any]) -> np.ndarray:
    """``librosa.power_to_db(librosa.feature.melspectrogram(y=signal, sr, n_fft, hop_length,
    n_mels, fmax), ref=1.0)`` (top_db 80) with the study's settings -> float32 (n_mels, T),
    computed in numpy (:func:`mel_power_spectrogram`)."""
    mel = mel_power_spectrogram(
        signal,
        int(settings["sample_rate"]),
        int(settings["n_fft"]),
        int(settings["hop_length"]),
        int(settings["n_mels"]),
        float(settings["fmax"]),
    )
    decibels = 10.0 * np.log10(np.maximum(1e-10, mel))
    return np.maximum(decibels, decibels.max() - 80.0).astype(np.float32)


def to_study_image(spectrogram: np.ndarray, quantize: bool = True) -> np.ndarray:
    """The study's image of a spectrogram: min-max to 0..255 per spectrogram, flipped so low
    frequencies are at the bottom, inverted (255 - value), 8-bit when ``quantize``.

    Returns float32 in [0, 255]; the CNN and the transfer backbones both read this scale.
    """
    spec = np.asarray(spectrogram, dtype=np.float32)
    low, high = float(spec.min()), float(spec.max())
    scaled = (spec - low) / (high - low) * 255.0 if high > low else np.zeros_like(spec)
    image = 255.0 - np.flipud(scaled)
    if quantize:
        image = np.round(image)
    return image.astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Pipeline side: settings, fingerprints, one track -> one stored spectrogram, lazy loading
# ------------------------------------------------------------------------------------------------
# Bump when the computation or the file layout changes in a way the settings do not show: every
# fingerprint changes with it, so stores written by older code are recomputed, never reused.
STORE_FORMAT_VERSION = 1
PAD_MODES = ("repeat", "zeros")
STORAGE_DTYPES = ("float16", "float32")


def n_samples(settings: Mapping[str, Any]) -> int:
    """Samples in the analysis window: 22,050 Hz x 29.70 s -> 654,885."""
    return int(round(settings["sample_rate"] * settings["duration_s"]))


def spectrogram_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that decide a stored spectrogram's values, validated, from
    ``params:spectrogram`` (worker counts and batch sizes are left out: they change nothing
    in the result, so they must not change the fingerprint)."""
    settings: dict[str, Any] = {}
    for key in ("sample_rate", "n_fft", "hop_length", "n_mels"):
        value = params.get(key, STUDY_SETTINGS[key])
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"spectrogram.{key} must be a positive integer, got {value!r}")
        settings[key] = value
    for key in ("duration_s", "fmax"):
        value = params.get(key, STUDY_SETTINGS[key])
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"spectrogram.{key} must be a positive number, got {value!r}")
        settings[key] = float(value)
    if settings["fmax"] > settings["sample_rate"] / 2:
        raise ValueError(
            f"spectrogram.fmax={settings['fmax']:g} is above the Nyquist frequency "
            f"{settings['sample_rate'] / 2:g} Hz of spectrogram.sample_rate="
            f"{settings['sample_rate']}: lower fmax or raise sample_rate."
        )
    pad_mode = params.get("pad_mode", "repeat")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"spectrogram.pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    dtype = params.get("storage_dtype", "float16")
    if dtype not in STORAGE_DTYPES:
        raise ValueError(
            f"spectrogram.storage_dtype must be one of {STORAGE_DTYPES}, got {dtype!r}"
        )
    settings["pad_mode"] = pad_mode
    settings["storage_dtype"] = dtype
    return settings


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """12 hex digits naming a set of settings (+ the store format version); the store keeps one
    folder per fingerprint, so changed settings never mix with or overwrite older results."""
    import hashlib
    import json

    payload = json.dumps({"format": STORE_FORMAT_VERSION, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def source_tag(path: str) -> str:
    """10 hex digits that change when the audio file changes (size and modification time), so a
    regenerated or replaced file is recomputed instead of silently reusing its old spectrogram.
    Copies that keep the modification time (``cp -p``, ``rsync -a``) keep their spectrograms.
    For a URL the object's version replaces the modification time (e.g. the S3 ETag, see
    :func:`music_genre.infra.location.file_stamp`). ``OSError`` when the file is unavailable."""
    import hashlib

    from music_genre.infra.location import file_stamp

    size, version = file_stamp(path)
    return hashlib.sha256(f"{size}:{version}".encode()).hexdigest()[:10]


def decode_window(path: str, settings: Mapping[str, Any]) -> np.ndarray:
    """``librosa.load(path, sr=sample_rate, mono=True, duration=duration_s)[0]``, sample for
    sample (:func:`music_genre.audio.decode.load_audio`)."""
    from music_genre.audio.decode import load_audio

    signal, _ = load_audio(
        path,
        sample_rate=int(settings["sample_rate"]),
        mono=True,
        duration_s=settings["duration_s"],
        offset_s=float(settings.get("offset_s", 0.0)),
    )
    return signal


def spectrogram_from_file(path: str, settings: Mapping[str, Any]) -> np.ndarray:
    """Decode, mono, resample, cut to the window (:func:`decode_window`), pad a short clip
    (``pad_mode``), then :func:`log_mel_spectrogram`. float32 ``(n_mels, n_frames(settings))``.

    For a clip at least ``duration_s`` long this equals
    ``power_to_db(melspectrogram(librosa.load(path, sr, mono=True, duration=duration_s)))``.
    """
    from music_genre.audio.decode import fit_to_length

    signal = decode_window(path, settings)
    signal = fit_to_length(signal, n_samples(settings), settings.get("pad_mode", "repeat"))
    return log_mel_spectrogram(signal, settings)


def spectrogram_task(
    track_id: str, path: str, settings: Mapping[str, Any]
) -> tuple[str, np.ndarray | None, str]:
    """Worker entry point: ``(track_id, spectrogram in the storage dtype, "")`` or
    ``(track_id, None, reason)``. Never raises, so one bad file cannot stop a parallel run."""
    try:
        spec = spectrogram_from_file(path, settings)
        expected = (settings["n_mels"], n_frames(settings))
        if spec.shape != expected:
            return track_id, None, f"spectrogram shape {spec.shape} != expected {expected}"
        if not np.isfinite(spec).all():
            return track_id, None, "spectrogram holds NaN or infinite values"
        return track_id, spec.astype(settings.get("storage_dtype", "float32")), ""
    except Exception as exc:  # noqa: BLE001 - reported per track in the bad-tracks report
        return track_id, None, f"{type(exc).__name__}: {exc}"


def load_spectrogram_file(location: str, options: Mapping[str, Any] | None = None) -> np.ndarray:
    """Read one stored spectrogram as float32 (the loaders of a store are partials of this);
    ``location`` is a local path or an fsspec URL (``options``: its storage options)."""
    if "://" not in location:
        return np.load(location, allow_pickle=False).astype(np.float32, copy=False)
    from music_genre.infra.storage import open_location

    with open_location(location, options) as handle:
        return np.load(handle, allow_pickle=False).astype(np.float32, copy=False)


class SpectrogramBatch:
    """What a spectrogram-producing node yields to a store dataset (one write batch).

    ``fingerprint`` names the settings folder, ``settings`` are recorded beside the files,
    ``arrays`` maps key -> array to write as ``<key>.<tags[key]>.npy``. A *manifest* batch
    (``is_manifest=True``, normally the first one a run yields) instead lists in ``tags`` every
    key the run covers with its version tag: it becomes the store's current content, so loading
    returns exactly those keys (once written) and nothing left over from other runs.
    ``failures`` (key -> reason), when given, is the run's complete list of keys that could not
    be computed so far; the store keeps the latest one beside the manifest.
    """

    __slots__ = ("fingerprint", "settings", "arrays", "tags", "is_manifest", "failures")

    def __init__(
        self,
        fingerprint: str,
        settings: Mapping[str, Any],
        arrays: Mapping[str, np.ndarray] | None = None,
        tags: Mapping[str, str] | None = None,
        is_manifest: bool = False,
        failures: Mapping[str, str] | None = None,
    ) -> None:
        self.fingerprint = fingerprint
        self.settings = dict(settings)
        self.arrays = dict(arrays or {})
        self.tags = dict(tags or {})
        self.is_manifest = is_manifest
        self.failures = None if failures is None else dict(failures)
        missing = set(self.arrays) - set(self.tags)
        if missing:
            raise ValueError(f"SpectrogramBatch: no version tag for keys {sorted(missing)[:5]}")

    def __repr__(self) -> str:
        kind = "manifest" if self.is_manifest else "arrays"
        return (
            f"SpectrogramBatch({kind}, fingerprint={self.fingerprint}, "
            f"{len(self.arrays)} arrays, {len(self.tags)} tags)"
        )


class LazySpectrograms(dict):
    """What a spectrogram store loads as: ``{key: zero-arg callable -> float32 array}``, like
    ``partitions.PartitionedDataset``, plus where the arrays came from:

    - ``fingerprint``: the settings folder, ``settings``: the settings that produced them;
    - ``tags``: key -> version tag (for spectrograms, the audio file's :func:`source_tag`);
    - ``failures``: key -> reason, the keys of the last run that could not be computed.

    The callables are ``functools.partial`` objects, so they pickle (worker processes,
    ``tf.data``) and read one file each when called; nothing is held in memory.
    """

    def __init__(
        self,
        loaders: Mapping[str, Any],
        fingerprint: str = "",
        settings: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        failures: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(loaders)
        self.fingerprint = fingerprint
        self.settings = dict(settings or {})
        self.tags = dict(tags or {})
        self.failures = dict(failures or {})


# ------------------------------------------------------------------------------------------------
# Training side: a streaming tf.data reader
# ------------------------------------------------------------------------------------------------
def spectrogram_tf_dataset(
    loaders: Mapping[str, Any],
    track_ids: Any,
    labels: Any,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
    transform: Any = None,
    drop_remainder: bool = False,
    prefetch: bool = True,
) -> Any:
    """A ``tf.data.Dataset`` of ``(spectrogram, label)`` batches that reads one file at a time.

    ``loaders``: key -> zero-arg callable returning an array (what ``log_mel_spectrograms`` and
    ``augmented_spectrograms`` load as; merge both mappings for "training set x 3").
    ``track_ids``/``labels``: the keys to read, in order, and their integer labels.
    Built with ``tf.data.Dataset.from_generator``: at most one batch plus the prefetch buffer
    is in memory, whatever the number of tracks.

    ``shuffle``: a new permutation every epoch (each iteration of the dataset), drawn from
    ``seed`` and the epoch number, so two runs with the same seed read the same order.
    ``transform(spec, rng) -> array``: applied to each float32 ``(n_mels, frames)`` array
    before batching, with a ``numpy.random.Generator`` seeded from ``(seed, epoch)``; e.g.
    :func:`music_genre.audio.augment.masking_transform` for on-the-fly SpecAugment masks, or
    ``lambda spec, rng: spec[..., None]`` to add a channel axis. Elements are float32, labels
    int32; the element shape is read from the first (transformed) item.
    """
    import tensorflow as tf

    keys = [str(k) for k in track_ids]
    targets = np.asarray(labels, dtype=np.int32)
    if len(keys) != len(targets):
        raise ValueError(f"{len(keys)} track_ids but {len(targets)} labels")
    if not keys:
        raise ValueError("spectrogram_tf_dataset: no track_ids to read")
    missing = [k for k in keys if k not in loaders]
    if missing:
        raise KeyError(
            f"{len(missing)} track_ids have no stored spectrogram (e.g. {missing[:3]}); run the "
            "spectrogram pipeline, or drop the tracks listed in bad_tracks_spectrogram.csv."
        )

    def _prepare(key: str, rng: np.random.Generator) -> np.ndarray:
        spec = np.asarray(loaders[key](), dtype=np.float32)
        if transform is not None:
            spec = np.asarray(transform(spec, rng), dtype=np.float32)
        return spec

    shape = _prepare(keys[0], np.random.default_rng([seed, 2**31])).shape
    epoch = {"n": 0}

    def _generate():
        current = epoch["n"]
        epoch["n"] += 1
        order = np.arange(len(keys))
        if shuffle:
            order = np.random.default_rng([seed, current, 0]).permutation(len(keys))
        rng = np.random.default_rng([seed, current, 1])
        for index in order:
            yield _prepare(keys[index], rng), targets[index]

    dataset = tf.data.Dataset.from_generator(
        _generate,
        output_signature=(
            tf.TensorSpec(shape=shape, dtype=tf.float32),
            tf.TensorSpec(shape=(), dtype=tf.int32),
        ),
    )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE) if prefetch else dataset


def plot_spectrogram(ax: Any, spec: np.ndarray, settings: Mapping[str, Any], title: str) -> Any:
    """Draw a dB spectrogram on a matplotlib axis: low frequencies at the bottom (as on the
    study's images), time in seconds. Returns the image for a colorbar."""
    seconds = spec.shape[1] * settings["hop_length"] / settings["sample_rate"]
    image = ax.imshow(
        spec,
        origin="lower",
        aspect="auto",
        cmap="magma",
        interpolation="nearest",
        extent=(0.0, seconds, 0, spec.shape[0]),
    )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("mel bin", fontsize=8)
    ax.tick_params(labelsize=7)
    return image
