"""Log-mel spectrograms as the study computed them, and the study's 8-bit image view of them."""

from __future__ import annotations

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


def log_mel_spectrogram(signal: np.ndarray, settings: Mapping[str, Any]) -> np.ndarray:
    """``power_to_db(melspectrogram(...), ref=1.0)`` with the study's settings -> (n_mels, T)."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=signal,
        sr=settings["sample_rate"],
        n_fft=settings["n_fft"],
        hop_length=settings["hop_length"],
        n_mels=settings["n_mels"],
        fmax=settings["fmax"],
    )
    return librosa.power_to_db(mel, ref=1.0).astype(np.float32)


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
