"""Audio decoding shared by every pipeline and by prediction.

One implementation of "file -> waveform" so that ingestion, spectrograms, handcrafted features
and the prediction command all see the same samples. A file is a local path or an fsspec URL
(``s3://bucket/fma_small/000/000002.mp3``, see :mod:`music_genre.infra.location`): libsndfile
reads a local file by name and a remote one through its fsspec file object.
"""

from __future__ import annotations

import os
import stat
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from music_genre.infra.location import is_url, local_path, url_info, url_to_fs

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

    path: str  # a local path or an fsspec URL

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


class _Source:
    """One opened audio location: what libsndfile reads (a local path, or an fsspec file
    object of a URL), the name errors give, and the audioread fallback (a real file)."""

    def __init__(self, name: str, readable: Any, fallback: Any) -> None:
        self.name = name
        self.readable = readable
        self.fallback = fallback

    def soundfile(self) -> sf.SoundFile:
        if not isinstance(self.readable, str):
            self.readable.seek(0)  # a file object read before (the header) starts over
        return sf.SoundFile(self.readable)


def _librosa_load(path: str) -> tuple[np.ndarray, int]:
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # librosa.load falls back to audioread for formats libsndfile cannot read.
        signal, rate = librosa.load(path, sr=None, mono=False)
        return signal, int(rate)


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _special_file_reason(local: Path) -> str:
    """Why an existing local path that is neither a directory nor a regular file is no audio
    file: what it is, and where it points when it is a symlink (the path itself stays the
    collection's own, so that the report names the file the user has)."""
    mode = local.stat().st_mode
    kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "a special file")
    via = f", via a symlink to {os.path.realpath(local)}" if local.is_symlink() else ""
    return f"not a regular file ({kind}{via})"


@contextmanager
def _open_source(path: str | Path) -> Iterator[_Source]:
    """Check that ``path`` (a local path or an fsspec URL) is a non-empty file and open it.

    A local path is handed to libsndfile by name, as always. A URL is opened with its fsspec
    filesystem and libsndfile reads the file object; audioread, which needs a real file, gets
    a temporary local copy (deleted afterwards)."""
    if not is_url(path):
        local = Path(local_path(path))
        if not local.exists():
            raise FileNotFoundError(f"{local}: file not found")
        if local.is_dir():
            raise AudioDecodeError(f"{local}: is a directory, not an audio file")
        if not local.is_file():
            # A FIFO would block the read forever, /dev/zero never ends: never open them.
            raise AudioDecodeError(f"{local}: {_special_file_reason(local)}")
        if local.stat().st_size == 0:
            raise AudioDecodeError(f"{local}: empty file (0 bytes)")
        yield _Source(str(local), str(local), lambda: _librosa_load(str(local)))
        return
    url = str(path)
    info = url_info(url)  # FileNotFoundError "<url>: file not found" when absent
    if info.get("type") == "directory":
        raise AudioDecodeError(f"{url}: is a directory, not an audio file")
    if not info.get("size"):
        raise AudioDecodeError(f"{url}: empty file (0 bytes)")
    fs, key = url_to_fs(url)

    def from_local_copy() -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory(prefix="music-genre-audio-") as folder:
            copy = os.path.join(folder, "audio" + os.path.splitext(key)[1])
            fs.get_file(key, copy)
            return _librosa_load(copy)

    with fs.open(key, "rb") as handle:
        yield _Source(url, handle, from_local_copy)


def _decode(source: _Source, frames: int = -1, start: int = 0) -> tuple[np.ndarray, int]:
    """Decode with libsndfile (WAV, FLAC, OGG, AU and, since 1.1, MP3), falling back to
    audioread for formats libsndfile lacks. Returns (frames, channels) float32 and the rate."""
    try:
        with source.soundfile() as handle:
            sample_rate = handle.samplerate
            if start:
                handle.seek(start)
            data = handle.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_error:
        try:
            mono_or_multi, sample_rate = source.fallback()
        except Exception as fallback_error:  # noqa: BLE001 - every decoder failed; say why
            # libsndfile's "Error opening ...: File does not exist or is not a regular file"
            # means "format not recognised" here (the file exists): say that instead.
            raise AudioDecodeError(
                f"{source.name}: cannot decode as audio: not a format libsndfile or audioread "
                f"can read ({type(fallback_error).__name__})"
            ) from sf_error
        data = np.atleast_2d(mono_or_multi).T.astype(np.float32)
        data = data[start : None if frames < 0 else start + frames]
    if data.size == 0:
        raise AudioDecodeError(f"{source.name}: decodes to no samples")
    return data, int(sample_rate)


def _header(source: _Source) -> tuple[int, int]:
    """(channels, sample rate) from the header alone, or (0, 0) when libsndfile can't say."""
    try:
        if isinstance(source.readable, str):
            info = sf.info(source.readable)
            return info.channels, info.samplerate
        with source.soundfile() as handle:
            return handle.channels, handle.samplerate
    except Exception:  # noqa: BLE001 - the full decode reports the real error
        return 0, 0


def _read(path: str | Path, frames: int = -1, start: int = 0) -> tuple[np.ndarray, int]:
    """Decode a local path or an fsspec URL (see :func:`_decode`)."""
    with _open_source(path) as source:
        return _decode(source, frames, start)


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
    with _open_source(path) as source:  # a URL is opened (and its header read) once
        _, native_rate = _header(source)
        start = int(round(offset_s * native_rate)) if native_rate else 0
        frames = -1 if duration_s is None else int(round(duration_s * native_rate))
        data, native_rate = _decode(source, frames=frames, start=start)
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
    """(channels, sample rate) of a local path or URL from the header alone, or (0, 0) when
    libsndfile can't say (or the file is missing, empty or unreachable)."""
    try:
        with _open_source(path) as source:
            return _header(source)
    except Exception:  # noqa: BLE001 - the full decode reports the real error
        return 0, 0


def read_tag(path: str | Path, field: str) -> str:
    """One string tag (``artist``, ``album``...) of a local file or URL as libsndfile reads it
    ("" when absent or unreadable)."""
    try:
        with _open_source(path) as source, source.soundfile() as handle:
            return str(getattr(handle, field, "") or "").strip()
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the probe
        return ""


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
