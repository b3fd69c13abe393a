"""Pitched instruments (additive, FM, Karplus-Strong, subtractive) and their layer effects."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from music_genre.demo.dsp import _decay, _filter, _ramp, _saw, _vibrato_phase

Instrument = Callable[[float, int, int], np.ndarray]  # (frequency Hz, n samples, sr) -> mono


# --------------------------------------------------------------------------------------------
# Pitched instruments: factory(rng) -> (play(f, n, sr), tail seconds). Timbre parameters are
# drawn once per track so every note of a track comes from the same "instrument".
# --------------------------------------------------------------------------------------------
def _piano(rng):
    rolloff, tau, inharm = rng.uniform(1.0, 2.2), rng.uniform(0.5, 1.5), rng.uniform(0, 3e-4)

    def play(f, n, sr):
        t = np.arange(n) / sr
        out = np.zeros(n)
        for k in range(1, 9):  # slightly stretched partials, upper ones dying faster
            fk = k * f * math.sqrt(1 + inharm * k * k)
            if fk >= 0.45 * sr:
                break
            out += k**-rolloff * np.sin(2 * np.pi * fk * t) * np.exp(-t * k**0.7 / tau)
        return out * _ramp(n, sr, 0.002, 0.02)  # soft edges: no clicks at note on/off

    return play, tau


def _fm_keys(rng, bell: bool = False):
    """Two-operator FM: ratio 1-2 gives electric piano, an inharmonic ratio gives bells."""
    ratio = rng.choice([1.4, 2.76, 3.5]) if bell else rng.choice([1.0, 1.0, 2.0])
    index = rng.uniform(2.0, 5.0) if bell else rng.uniform(0.8, 3.0)
    tau = rng.uniform(1.0, 2.5) if bell else rng.uniform(0.5, 1.5)

    def play(f, n, sr):
        t = np.arange(n) / sr
        mod = index * np.exp(-t / (0.3 * tau)) * np.sin(2 * np.pi * ratio * f * t)
        return np.sin(2 * np.pi * f * t + mod) * _decay(n, sr, tau)

    return play, tau


def _pluck(rng, bright=(0.3, 0.9), t60=(0.8, 3.0), buzz: float = 0.0):
    """Karplus-Strong string: a noise burst recirculated through an averaging filter.

    One period later the buffer is g * (b + roll(b, 1)) / 2, a circulant map, i.e. a plain
    per-bin gain in the DFT domain; so all periods are computed at once with one inverse FFT
    instead of a Python loop over ~f*duration periods.
    """
    brightness, t60 = rng.uniform(*bright), rng.uniform(*t60)

    def play(f, n, sr):
        p = max(2, int(round(sr / f)))
        buf = rng.uniform(-1.0, 1.0, p)
        for _ in range(int((1 - brightness) * 6)):  # softer pick = smoother initial burst
            buf = 0.5 * (buf + np.roll(buf, 1))
        buf -= buf.mean()
        buf /= np.abs(buf).max() + 1e-9
        g = 10 ** (-3 * p / (sr * t60))  # loss per period for a t60 decay
        k = np.arange(p // 2 + 1)
        gain = g * 0.5 * (1 + np.exp(-2j * np.pi * k / p))  # DFT of the one-period map
        powers = np.cumprod(np.broadcast_to(gain, (-(-n // p), len(gain))), axis=0) / gain
        out = np.fft.irfft(np.fft.rfft(buf) * powers, n=p, axis=1).ravel()[:n]
        if buzz:  # sitar-like "jawari" buzz: a soft clipper adds bright partials
            out = np.tanh(buzz * out) / math.tanh(buzz)
        return out

    return play, min(t60, 1.5)


def _organ(rng):
    harmonics = np.array([1, 2, 3, 4, 6])
    drawbars = rng.uniform(0.1, 1.0, 5) * np.array([1.0, 0.8, 0.6, 0.4, 0.3])
    rate = rng.uniform(5.0, 7.0)

    def play(f, n, sr):
        t = np.arange(n) / sr
        ph = _vibrato_phase(f, t, rate, 0.003)
        out = sum(
            d * np.sin(2 * np.pi * h * ph)
            for h, d in zip(harmonics, drawbars, strict=True)
            if h * f < 0.45 * sr
        )
        return out * _ramp(n, sr, 0.01, 0.08)

    return play, 0.08


def _saw_synth(
    rng,
    voices=(1, 3),
    detune=(0.002, 0.012),
    attack=(0.005, 0.05),
    release=(0.05, 0.3),
    vibrato=0.0,
):
    """Detuned sawtooth voices: leads, pads and string sections (filtered per layer)."""
    nv = int(rng.integers(voices[0], voices[1] + 1))
    det, att, rel = rng.uniform(*detune), rng.uniform(*attack), rng.uniform(*release)
    phases = rng.uniform(0, 1, nv)
    rate = rng.uniform(4.5, 6.0)

    def play(f, n, sr):
        t = np.arange(n) / sr
        out = np.zeros(n)
        for v in range(nv):
            fv = f * (1 + det * (v - (nv - 1) / 2))
            ph = _vibrato_phase(fv, t, rate, vibrato) if vibrato else fv * t
            out += _saw(ph + phases[v])
        return out / math.sqrt(nv) * _ramp(n, sr, att, rel)

    return play, rel


def _square(rng):
    duty = rng.choice([0.125, 0.25, 0.5])  # chiptune-style pulse widths

    def play(f, n, sr):
        ph = f * np.arange(n) / sr
        return np.where(ph % 1.0 < duty, 1.0, -1.0) * _ramp(n, sr, 0.003, 0.03) * 0.6

    return play, 0.03


def _flute(rng):
    breath, rate = rng.uniform(0.02, 0.08), rng.uniform(4.5, 5.5)

    def play(f, n, sr):
        t = np.arange(n) / sr
        ph = _vibrato_phase(f, t, rate, 0.004)
        tone = np.sin(2 * np.pi * ph) + 0.2 * np.sin(4 * np.pi * ph) + 0.05 * np.sin(6 * np.pi * ph)
        return (tone + breath * rng.standard_normal(n)) * _ramp(n, sr, 0.06, 0.1)

    return play, 0.1


def _bass_sine(rng):
    tau = rng.uniform(0.3, 1.2)

    def play(f, n, sr):
        t = np.arange(n) / sr
        return (
            (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t))
            * _decay(n, sr, tau)
            * _ramp(n, sr, 0.005, 0.03)
        )

    return play, 0.03


def _bass_808(rng):
    """Long sine boom with a pitch drop; the layer saturates it (hip-hop/trap sub bass)."""
    tau = rng.uniform(0.4, 1.2)

    def play(f, n, sr):
        t = np.arange(n) / sr
        freq = f * (1 + np.exp(-t / 0.03))
        return (
            np.sin(2 * np.pi * np.cumsum(freq) / sr)
            * _decay(n, sr, tau)
            * _ramp(n, sr, 0.001, 0.03)
        )

    return play, 0.05


def _bass_fm(rng):
    index = rng.uniform(1.0, 3.0)

    def play(f, n, sr):
        t = np.arange(n) / sr
        mod = index * np.exp(-t / 0.08) * np.sin(2 * np.pi * f * t)
        return np.sin(2 * np.pi * f * t + mod) * _decay(n, sr, 0.5) * _ramp(n, sr, 0.002, 0.03)

    return play, 0.03


# name -> (factory, layer effects applied after all notes are summed)
INSTRUMENTS: dict[str, tuple[Callable, dict]] = {
    "piano": (_piano, {}),
    "fm_keys": (_fm_keys, {}),
    "bell": (lambda r: _fm_keys(r, bell=True), {}),
    "pluck": (_pluck, {}),
    "sitar": (
        lambda r: _pluck(r, bright=(0.8, 1.0), t60=(1.5, 3.0), buzz=3.0),
        {"bandpass": (400, 6000)},
    ),
    "organ": (_organ, {}),
    "saw": (_saw_synth, {"lowpass": (1500, 7000)}),
    "pad": (
        lambda r: _saw_synth(r, (3, 5), (0.005, 0.02), (0.3, 1.0), (0.4, 1.0)),
        {"lowpass": (800, 3500)},
    ),
    "strings": (
        lambda r: _saw_synth(r, (3, 4), (0.003, 0.008), (0.1, 0.5), (0.3, 0.8), 0.004),
        {"lowpass": (2000, 5000)},
    ),
    "fiddle": (
        lambda r: _saw_synth(r, (1, 1), (0, 0), (0.04, 0.1), (0.05, 0.15), 0.006),
        {"formant": (600, 2600)},
    ),
    "dist_guitar": (  # two detuned saws into a hard clipper and a dark "cabinet"
        lambda r: _saw_synth(r, (2, 2), (0.002, 0.006), (0.002, 0.01), (0.03, 0.1)),
        {"dist": (3.0, 12.0), "lowpass": (2500, 5000)},
    ),
    "voice": (
        lambda r: _saw_synth(r, (1, 1), (0, 0), (0.04, 0.1), (0.08, 0.2), 0.008),
        {"formant": (700, 1200)},
    ),
    "square": (_square, {"lowpass": (3000, 10000)}),
    "flute": (_flute, {}),
    "bass_sine": (_bass_sine, {}),
    "bass_saw": (
        lambda r: _saw_synth(r, (1, 2), (0.002, 0.006), (0.003, 0.01), (0.03, 0.08)),
        {"lowpass": (250, 900)},
    ),
    "bass_pluck": (
        lambda r: _pluck(r, bright=(0.2, 0.5), t60=(1.0, 2.0)),
        {"lowpass": (600, 1500)},
    ),
    "bass_808": (_bass_808, {"dist": (1.5, 4.0)}),
    "bass_fm": (_bass_fm, {"lowpass": (400, 1200)}),
}


def _layer_fx(x: np.ndarray, fx: dict, sr: int, rng) -> np.ndarray:
    """Per-layer processing drawn per track: distortion, tone filters, crude vowel formants."""
    if "dist" in fx:
        drive = rng.uniform(*fx["dist"])
        x = np.tanh(drive * x / (np.abs(x).max() + 1e-9))
    if "lowpass" in fx:
        x = _filter(x, "lowpass", rng.uniform(*fx["lowpass"]), sr)
    if "bandpass" in fx:
        x = _filter(x, "bandpass", fx["bandpass"], sr)
    if "formant" in fx:  # two resonances of a vowel, shifted a little per track
        f1, f2 = fx["formant"]
        s = rng.uniform(0.85, 1.2)
        first = _filter(x, "bandpass", (f1 * s * 0.8, f1 * s * 1.25), sr)
        x = first + 0.6 * _filter(x, "bandpass", (f2 * s * 0.85, f2 * s * 1.2), sr)
    return x
