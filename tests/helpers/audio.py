"""Synthetic audio for the tests: a sine tone (optionally with a slow tremolo, so a spectrogram
has some movement) as samples or written to a file in any format libsndfile writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(
    seconds: float,
    rate: int = 22050,
    freq: float = 330.0,
    amplitude: float = 0.3,
    tremolo_hz: float = 0.0,
) -> np.ndarray:
    """``amplitude * sin(2 pi freq t) * (1 + sin(2 pi tremolo_hz t))``, mono float64."""
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t) * (1 + np.sin(2 * np.pi * tremolo_hz * t))


def write_tone(
    path: Path,
    seconds: float,
    rate: int = 22050,
    freq: float = 330.0,
    channels: int = 1,
    fmt: str | None = None,
    **shape: float,
) -> Path:
    """:func:`tone` written to ``path`` (its folders made), the same wave on every channel;
    ``fmt`` as ``soundfile.write`` takes it (None: from the suffix)."""
    wave = tone(seconds, rate, freq, **shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate, format=fmt)
    return path
