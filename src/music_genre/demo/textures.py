"""Noise textures layered under the music (mostly Experimental; vinyl crackle for lo-fi hip-hop)."""

from __future__ import annotations

import numpy as np

from music_genre.demo.dsp import _add, _filter, _midi_hz


# --------------------------------------------------------------------------------------------
# Noise textures (mostly Experimental; vinyl crackle for lo-fi hip-hop)
# --------------------------------------------------------------------------------------------
def _lfo(n, sr, rng, lo=0.03, hi=0.3):
    t = np.arange(n) / sr
    return 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(lo, hi) * t + rng.uniform(0, 2 * np.pi))


def _texture(name: str, plan, n: int, sr: int, rng) -> np.ndarray:
    if name == "vinyl":
        x = 0.15 * _filter(rng.standard_normal(n), "lowpass", 4000, sr)
        clicks = np.zeros(n)
        idx = rng.integers(0, n, int(rng.uniform(5, 30) * n / sr))
        clicks[idx] = rng.uniform(-1, 1, len(idx))
        return x + _filter(clicks, "highpass", 1500, sr) * 3
    if name == "noise_sweep":  # white noise whose band drifts slowly between three filters
        w = rng.standard_normal(n)
        bands = [(100, 600), (600, 3000), (3000, 12000)]
        return sum(_filter(w, "bandpass", b, sr) * _lfo(n, sr, rng) for b in bands)
    if name == "drone":  # beating, slowly swelling low tones (inharmonic partials)
        t = np.arange(n) / sr
        f = _midi_hz(plan["root"] + 36)
        ratios = [1.0, 1.003, rng.uniform(1.4, 2.9), rng.uniform(3.1, 5.3)]
        return sum(np.sin(2 * np.pi * f * r * t) / (k + 1) for k, r in enumerate(ratios)) * _lfo(
            n, sr, rng
        )
    if name == "glitch":  # short bursts of pulse waves and noise at random times
        x = np.zeros(n)
        for _ in range(int(rng.uniform(1, 6) * n / sr)):
            m = int(rng.uniform(0.005, 0.06) * sr)
            if rng.random() < 0.5:
                burst = np.sign(np.sin(2 * np.pi * rng.uniform(100, 4000) * np.arange(m) / sr))
            else:
                burst = rng.standard_normal(m)
            _add(x, int(rng.integers(0, n)), burst, rng.uniform(0.2, 1.0))
        return x
    if name == "granular":  # dense cloud of tiny sine grains
        x = np.zeros(n)
        grain_t = np.arange(int(0.02 * sr)) / sr
        win = np.hanning(len(grain_t))
        for _ in range(int(rng.uniform(20, 60) * n / sr)):
            g = np.sin(2 * np.pi * rng.uniform(300, 5000) * grain_t) * win
            _add(x, int(rng.integers(0, n)), g, rng.uniform(0.1, 0.6))
        return x
    if name == "hum":  # mains hum with harmonics
        t = np.arange(n) / sr
        f = rng.choice([50.0, 60.0])
        return sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3, 5)) * 0.5
    if name == "wind":
        return (
            _filter(rng.standard_normal(n), "lowpass", rng.uniform(300, 900), sr)
            * _lfo(n, sr, rng, 0.05, 0.5)
            * 2
        )
    raise ValueError(name)
