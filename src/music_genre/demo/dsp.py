"""Signal helpers shared by every sound source: envelopes, filters, mixing into a buffer."""

from __future__ import annotations

import numpy as np
from scipy import signal

# Music is synthesized at 22,050 Hz (the rate every feature of this project reads at) and then
# resampled to the file's rate; only the noise floor is added at the file's own rate. This
# halves the synthesis time; MP3 encoding is the other half of the cost.
SYNTH_SR = 22_050


# --------------------------------------------------------------------------------------------
# Signal helpers
# --------------------------------------------------------------------------------------------
def _midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12.0)


def _choose(rng: np.random.Generator, weights: dict, focus: float = 1.0):
    """Weighted random key; focus > 1 favours the heavier keys even more."""
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float) ** focus
    return keys[rng.choice(len(keys), p=p / p.sum())]


def _filter(x: np.ndarray, kind: str, freq, sr: int, order: int = 2) -> np.ndarray:
    """Butterworth filter along the last axis, cut-offs clamped below Nyquist (rates vary)."""
    top = 0.45 * sr
    if kind == "bandpass":
        freq = [max(20.0, min(freq[0], top * 0.9)), min(freq[1], top)]
    else:
        freq = min(freq, top)
    sos = signal.butter(order, freq, btype=kind, fs=sr, output="sos")
    return signal.sosfilt(sos.astype(x.dtype) if x.dtype == np.float32 else sos, x, axis=-1)


def _ramp(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack/release envelope for sustained instruments."""
    env = np.ones(n)
    a = min(n, max(1, int(attack * sr)))
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    r = min(n - a, max(1, int(release * sr)))
    if r > 0:
        env[n - r :] *= np.linspace(1.0, 0.0, r)
    return env


def _decay(n: int, sr: int, tau: float, attack: float = 0.002) -> np.ndarray:
    """Exponential decay envelope for struck/plucked sounds (short attack avoids clicks)."""
    env = np.exp(-np.arange(n) / (sr * tau))
    a = min(n, max(1, int(attack * sr)))
    env[:a] *= np.linspace(0.0, 1.0, a)
    return env


def _saw(phase: np.ndarray) -> np.ndarray:
    return 2.0 * (phase % 1.0) - 1.0


def _vibrato_phase(f: float, t: np.ndarray, rate: float, depth: float) -> np.ndarray:
    """Phase in cycles of a tone at f Hz whose frequency wobbles by +-depth (fraction)."""
    return f * t - f * depth * np.cos(2 * np.pi * rate * t) / (2 * np.pi * rate)


def _add(buf: np.ndarray, start: int, sig: np.ndarray, gain: float = 1.0) -> None:
    """Mix ``sig`` into ``buf`` at sample ``start``, clipping at both ends."""
    if start < 0:
        sig = sig[-start:]
        start = 0
    m = min(len(sig), len(buf) - start)
    if m > 0:
        buf[start : start + m] += gain * sig[:m]
