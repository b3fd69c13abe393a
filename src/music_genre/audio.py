"""Audio decoding shared by every pipeline and by prediction.

One implementation of "file -> waveform" so that ingestion, spectrograms, handcrafted features
and the prediction command all see the same samples.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".ogg", ".au")


class AudioDecodeError(Exception):
    """A file that exists but cannot be decoded as audio; the message says why."""


@dataclass(frozen=True)
class AudioInfo:
    """What decoding a whole file revealed (metadata durations in FMA are known to be wrong)."""

    duration_s: float
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class AudioFile:
    """A lazy handle on one audio file: nothing is read until ``info`` or ``load`` is called.

    It is small and picklable, so a node can hand thousands of them to worker processes.
    """

    path: str

    def info(self) -> AudioInfo:
        return probe_audio(self.path)

    def load(
        self,
        sample_rate: int | None = None,
        mono: bool = True,
        duration_s: float | None = None,
        offset_s: float = 0.0,
    ) -> tuple[np.ndarray, int]:
        return load_audio(self.path, sample_rate, mono, duration_s, offset_s)


def _read(path: str | Path, frames: int = -1, start: int = 0) -> tuple[np.ndarray, int]:
    """Decode with libsndfile (WAV, FLAC, OGG, AU and, since 1.1, MP3), falling back to
    audioread for formats libsndfile lacks. Returns (frames, channels) float32 and the rate."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    if path.is_dir():
        raise AudioDecodeError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: empty file (0 bytes)")
    try:
        with sf.SoundFile(str(path)) as handle:
            sample_rate = handle.samplerate
            if start:
                handle.seek(start)
            data = handle.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_error:
        try:
            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # librosa.load falls back to audioread for formats libsndfile cannot read.
                mono_or_multi, sample_rate = librosa.load(str(path), sr=None, mono=False)
        except Exception as fallback_error:  # noqa: BLE001 - every decoder failed; say why
            # libsndfile's "Error opening ...: File does not exist or is not a regular file"
            # means "format not recognised" here (the file exists): say that instead.
            raise AudioDecodeError(
                f"{path}: cannot decode as audio: not a format libsndfile or audioread can "
                f"read ({type(fallback_error).__name__})"
            ) from sf_error
        data = np.atleast_2d(mono_or_multi).T.astype(np.float32)
        data = data[start : None if frames < 0 else start + frames]
    if data.size == 0:
        raise AudioDecodeError(f"{path}: decodes to no samples")
    return data, int(sample_rate)


def probe_audio(path: str | Path) -> AudioInfo:
    """Decode the whole file to learn its real duration, rate and channel count."""
    data, sample_rate = _read(path)
    return AudioInfo(
        duration_s=data.shape[0] / sample_rate, sample_rate=sample_rate, channels=data.shape[1]
    )


def load_audio(
    path: str | Path,
    sample_rate: int | None = None,
    mono: bool = True,
    duration_s: float | None = None,
    offset_s: float = 0.0,
) -> tuple[np.ndarray, int]:
    """Decode, mix to mono, resample and cut a window, sample for sample like
    ``librosa.load(path, sr=sample_rate, mono=mono, offset=offset_s, duration=duration_s)``:
    the window is cut at the native rate, channels are averaged, then soxr resamples.

    Returns (samples,) when ``mono`` else (channels, samples), float32, and the rate.
    """
    _, native_rate = sf_info_rate(path)
    start = int(round(offset_s * native_rate)) if native_rate else 0
    frames = -1 if duration_s is None else int(round(duration_s * native_rate))
    data, native_rate = _read(path, frames=frames, start=start)
    signal = to_mono(data.T) if mono else data.T
    if sample_rate is not None and sample_rate != native_rate:
        signal = resample(signal, native_rate, sample_rate)
        native_rate = sample_rate
    return np.ascontiguousarray(signal, dtype=np.float32), int(native_rate)


def to_mono(channels: np.ndarray) -> np.ndarray:
    """``numpy.mean(channels, axis=0)`` (librosa's mono mix) of (channels, samples), bit for
    bit: channels added one by one then divided, much faster than ``mean`` on strided stereo."""
    if channels.ndim == 1:
        return channels
    total = channels[0].copy()
    for channel in channels[1:]:
        total += channel
    return np.true_divide(total, channels.shape[0], out=total)


def resample(signal: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``librosa.resample`` (its default soxr "HQ", length fixed to ``ceil(n * ratio)``) for a
    signal of shape (samples,) or (channels, samples). Calls soxr directly so that worker
    processes need not import librosa and numba."""
    if orig_sr == target_sr:
        return signal
    import soxr

    n_out = int(np.ceil(signal.shape[-1] * (float(target_sr) / orig_sr)))
    out = soxr.resample(signal.T, orig_sr, target_sr, quality="soxr_hq").T
    if out.shape[-1] > n_out:
        out = out[..., :n_out]
    elif out.shape[-1] < n_out:
        out = np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, n_out - out.shape[-1])])
    return np.asarray(out, dtype=signal.dtype)


def sf_info_rate(path: str | Path) -> tuple[int, int]:
    """(channels, sample rate) from the header alone, or (0, 0) when libsndfile can't say."""
    try:
        info = sf.info(str(path))
        return info.channels, info.samplerate
    except Exception:  # noqa: BLE001 - the full decode reports the real error
        return 0, 0


def fit_to_length(signal: np.ndarray, length: int, pad_mode: str = "repeat") -> np.ndarray:
    """Cut or pad a 1-D signal to ``length`` samples; ``repeat`` loops short clips (so a short
    clip still fills the spectrogram with music), ``zeros`` pads with silence."""
    if signal.shape[-1] >= length:
        return signal[..., :length]
    if pad_mode == "repeat" and signal.shape[-1] > 0:
        reps = int(np.ceil(length / signal.shape[-1]))
        return np.tile(signal, reps)[..., :length]
    if pad_mode in ("zeros", "repeat"):
        pad = [(0, 0)] * (signal.ndim - 1) + [(0, length - signal.shape[-1])]
        return np.pad(signal, pad)
    raise ValueError(f"pad_mode must be 'repeat' or 'zeros', got {pad_mode!r}")
