"""Music-like test audio shared by the benchmarks (no data download needed)."""

from __future__ import annotations

import numpy as np


def synthesize_clip(index: int, sample_rate: int = 44100, seconds: float = 30.0) -> np.ndarray:
    """A few seconds-long chords with harmonics, a pulse of noise hits and some hiss, stereo."""
    rng = np.random.default_rng(index)
    n = int(sample_rate * seconds)
    t = np.arange(n) / sample_rate
    left = np.zeros(n)
    step = int(sample_rate * rng.uniform(0.4, 1.2))
    for start in range(0, n, step):
        end = min(n, start + step)
        root = 110 * 2 ** (rng.integers(0, 24) / 12)
        envelope = np.exp(-np.arange(end - start) / (sample_rate * rng.uniform(0.2, 1.0)))
        for ratio in (1.0, 1.26, 1.5):
            for harmonic in range(1, 5):
                left[start:end] += (
                    (0.08 / harmonic)
                    * envelope
                    * np.sin(2 * np.pi * root * ratio * harmonic * t[start:end])
                )
        hit = min(end - start, int(0.05 * sample_rate))
        left[start : start + hit] += 0.3 * rng.standard_normal(hit) * np.linspace(1, 0, hit)
    left += 0.01 * rng.standard_normal(n)
    right = np.roll(left, 37) * 0.9 + 0.01 * rng.standard_normal(n)
    return (np.stack([left, right], axis=1) / 2).astype(np.float32)
