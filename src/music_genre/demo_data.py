"""Deterministic offline demo dataset in the exact layout of the FMA (Free Music Archive).

``generate_demo_dataset(root)`` writes, under ``root``::

    fma_metadata/tracks.csv   FMA's format: two header rows (+ the ``track_id`` row), groups
                              album / artist / set / track with the real column names
    fma_metadata/genres.csv   genre_id,#tracks,parent,title,top_level (real FMA ids)
    fma_small/NNN/NNNNNN.mp3  synthesized ~30-s music clips, track ids from 900000
    README.txt, demo_manifest.json

The music is synthesized (drums from noise bursts and pitched decays; additive, FM,
Karplus-Strong and subtractive instruments; chord progressions in genre-typical modes) from a
small recipe per genre (``GENRE_RECIPES``), with enough random variation inside a genre, and
borrowing between genres, that classifying it is a real task rather than a lookup: mean MFCCs +
logistic regression reach ~0.7 in 5-fold CV on the default demo (chance 0.125). Everything is
drawn from RNGs seeded by ``(seed, track_id)`` / ``(seed, artist_id)``, so the output does not
depend on the number of worker processes. Like the real ``fma_small``, a few listed tracks are
broken on purpose (empty, not audio, too short, truncated, missing) so error paths get exercised.

Command line: ``genre-demo-data --root data/01_raw/demo`` (see ``main``).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr
from scipy import signal

from music_genre.atomic import atomic_path

FIRST_TRACK_ID = 900_000  # far above the real FMA ids (max ~155k), so they never collide
FIRST_ARTIST_ID = 90_000
FIRST_ALBUM_ID = 190_000

# The 8 top genres of fma_small with their real FMA genre ids.
GENRES: dict[str, int] = {
    "Electronic": 15,
    "Experimental": 38,
    "Folk": 17,
    "Hip-Hop": 21,
    "Instrumental": 1235,
    "International": 2,
    "Pop": 10,
    "Rock": 12,
}
# One real FMA sub-genre per top genre (id, title), so genres/genres_all are not all trivial.
SUBGENRES: dict[str, tuple[int, str]] = {
    "Electronic": (181, "Techno"),
    "Experimental": (1, "Avant-Garde"),
    "Folk": (33, "Psych-Folk"),
    "Hip-Hop": (539, "Rap"),
    "Instrumental": (18, "Soundtrack"),
    "International": (46, "Latin America"),
    "Pop": (362, "Synth Pop"),
    "Rock": (25, "Punk"),
}

# Deliberately broken files (listed as subset small, like 099134 / 098565 in the real data).
DEFECTS = ("empty", "not_audio", "short", "truncated", "missing")
DEFECT_GENRES = ("Hip-Hop", "Experimental", "Folk", "Rock", "Pop")
TRUNCATE_FRACTION = 0.1  # keep 10 % of a valid MP3's bytes -> decodes to ~3 s of 30
NOT_AUDIO_BYTES = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
    b"<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p>"
    b"</body></html>\n"
)
N_MEDIUM_ROWS = 8  # listed in tracks.csv only (no audio), like fma_medium/large rows
N_LARGE_ROWS = 4

# Music is synthesized at 22,050 Hz (the rate every feature of this project reads at) and then
# resampled to the file's rate; only the noise floor is added at the file's own rate. This
# halves the synthesis time; MP3 encoding is the other half of the cost.
SYNTH_SR = 22_050
MP3_COMPRESSION = 0.7  # libsndfile VBR quality: ~85 kbit/s, 15 kHz band, ~20 % faster than 0.0
# Real FMA files: mostly 44.1 kHz stereo, some 48 / 22.05 kHz, some mono.
SAMPLE_RATES = {44_100: 0.70, 48_000: 0.15, 22_050: 0.15}
P_STEREO = 0.8

# Difficulty knobs: chance that a track takes one style choice from another genre's recipe,
# and chance that a track keeps its artist's choice (tracks of one artist sound alike).
BORROW_P = 0.08
ARTIST_CONSISTENCY = 0.6
RECIPE_FOCUS = 2.0  # exponent on recipe weights: higher = more stereotyped genres

Instrument = Callable[[float, int, int], np.ndarray]  # (frequency Hz, n samples, sr) -> mono


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
            d * np.sin(2 * np.pi * h * ph) for h, d in zip(harmonics, drawbars) if h * f < 0.45 * sr
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


# --------------------------------------------------------------------------------------------
# Drums: one-shot samples per track, placed by 16th-note step patterns
# --------------------------------------------------------------------------------------------
def _kick(sr, rng, f0, tau, click):
    n = int(sr * tau * 4)
    t = np.arange(n) / sr
    freq = f0 * (1 + rng.uniform(1.5, 4.0) * np.exp(-t / 0.025))  # fast downward pitch sweep
    body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / tau)
    return body + click * rng.standard_normal(n) * np.exp(-t / 0.004)


def _snare(sr, rng, tone, tau, band):
    n = int(sr * tau * 4)
    t = np.arange(n) / sr
    noise = _filter(rng.standard_normal(n), "bandpass", band, sr)
    noise /= noise.std() * 3
    return noise * _decay(n, sr, tau) + 0.5 * np.sin(2 * np.pi * tone * t) * np.exp(-t / 0.05)


def _clap(sr, rng):
    n = int(sr * 0.3)
    noise = _filter(rng.standard_normal(n), "bandpass", (900, 3500), sr)
    env = sum(np.roll(_decay(n, sr, 0.008), int(k * 0.011 * sr)) for k in range(3))  # 3 quick hands
    return noise / noise.std() * 0.3 * (env + np.roll(_decay(n, sr, 0.12), int(0.033 * sr)))


def _hat(sr, rng, tau, cutoff):
    n = int(sr * tau * 5)
    return (
        _filter(rng.standard_normal(n), "highpass", cutoff, sr) * _decay(n, sr, tau, 0.0005) * 0.5
    )


def _hand_drum(sr, rng, f0, tau):
    """Tabla/conga-like: a pitched membrane that bends down, plus a slap of noise."""
    n = int(sr * tau * 4)
    t = np.arange(n) / sr
    freq = f0 * (1 + 0.3 * np.exp(-t / 0.05))
    tone = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / tau)
    return tone + 0.3 * _filter(rng.standard_normal(n), "highpass", 2000, sr) * np.exp(-t / 0.006)


def _drum_kit(style: str, sr: int, rng) -> dict[str, np.ndarray]:
    u = rng.uniform
    if style == "electronic":  # long boomy kick, clap, crisp hats
        kit = {
            "kick": _kick(sr, rng, u(45, 55), u(0.2, 0.45), u(0.1, 0.4)),
            "snare": _clap(sr, rng),
        }
    elif style == "hiphop":  # punchy kick, fat snare
        kit = {
            "kick": _kick(sr, rng, u(45, 60), u(0.15, 0.35), u(0.2, 0.6)),
            "snare": _snare(sr, rng, u(160, 220), u(0.1, 0.2), (800, 5000)),
        }
    elif style == "soft":  # brushes / light kit for acoustic genres
        kit = {
            "kick": 0.5 * _kick(sr, rng, u(60, 80), u(0.08, 0.15), 0.1),
            "snare": 0.4 * _snare(sr, rng, u(180, 250), u(0.15, 0.3), (2000, 7000)),
        }
    else:  # acoustic rock kit: short kick with beater click, snappy snare
        kit = {
            "kick": _kick(sr, rng, u(55, 75), u(0.08, 0.18), u(0.4, 0.9)),
            "snare": _snare(sr, rng, u(170, 260), u(0.08, 0.18), (1000, 8000)),
        }
    kit["hat"] = _hat(sr, rng, u(0.015, 0.05), u(6000, 9000))
    kit["ohat"] = _hat(sr, rng, u(0.12, 0.3), u(5000, 8000))
    kit["perc_lo"] = _hand_drum(sr, rng, u(90, 160), u(0.08, 0.3))
    kit["perc_hi"] = _hand_drum(sr, rng, u(250, 500), u(0.05, 0.15))
    kit["shaker"] = (
        0.5
        * _filter(rng.standard_normal(int(0.1 * sr)), "highpass", 5000, sr)
        * _ramp(int(0.1 * sr), sr, 0.01, 0.08)
    )
    return kit


# Patterns: one character per 16th note; x = accent, o = soft, ? = soft hit half of the time.
DRUM_PATTERNS: dict[str, dict[str, str]] = {
    "four_on_floor": {
        "kick": "x...x...x...x...",
        "snare": "....x.......x...",
        "ohat": "..o...o...o...o.",
        "hat": "o?o?o?o?o?o?o?o?",
    },
    "backbeat": {
        "kick": "x.......x.?.....",
        "snare": "....x.......x...",
        "hat": "x.o.x.o.x.o.x.o.",
    },
    "rock": {"kick": "x.....x.x.?.....", "snare": "....x.......x..?", "ohat": "x.x.x.x.x.x.x.x."},
    "boom_bap": {
        "kick": "x..?......x..?..",
        "snare": "....x.......x...",
        "hat": "x.o.x.o.x.o.x.oo",
    },
    "breakbeat": {
        "kick": "x.........x.....",
        "snare": "....x..o.o..x..o",
        "hat": "x.x.x.x.x.x.x.x.",
    },
    "halftime": {
        "kick": "x.....?...x.....",
        "snare": "........x.......",
        "hat": "xoxoxoxoxoxo?o?o",
    },
    "brushes": {
        "kick": "o.......o.......",
        "snare": "....o.......o...",
        "shaker": "o?o?o?o?o?o?o?o?",
    },
    "hand": {},  # drawn per track, see _hand_pattern
    "irregular": {},  # drawn per bar, see _render_drums
}


def _hand_pattern(rng, steps: int) -> dict[str, str]:
    """A random but repeating hand-percussion cycle (the groove of a track)."""

    def line(p, first):
        hits = ["x" if (i == 0 and first) or rng.random() < p else "." for i in range(steps)]
        return "".join(h if h == "." or rng.random() < 0.6 else "o" for h in hits)

    return {"perc_lo": line(0.2, True), "perc_hi": line(0.35, False), "shaker": "o." * (steps // 2)}


def _fit(code: str, steps: int) -> str:
    """Adapt a 16-step pattern to 12- or 14-step bars (3/4, 7/8)."""
    return (code * 2)[:steps]


def _step_time(step: int, step_s: float, swing: float) -> float:
    return step * step_s + (swing * step_s if step % 2 else 0.0)


def _render_drums(plan, kit, n, sr, rng) -> np.ndarray:
    buf = np.zeros(n, dtype=np.float32)
    steps, step_s, bar_s = plan["steps_per_bar"], plan["step_s"], plan["bar_s"]
    pattern = {k: _fit(v, steps) for k, v in DRUM_PATTERNS[plan["drums"]].items()}
    if plan["drums"] == "hand":
        pattern = _hand_pattern(rng, steps)
    for bar in range(plan["n_bars"]):
        if not plan["drum_bars"][bar]:
            continue
        if plan["drums"] == "irregular":  # a new, sparse pattern each bar, off the grid
            pattern = {
                k: "".join("x" if rng.random() < 0.12 else "." for _ in range(steps))
                for k in ("kick", "snare", "hat", "perc_hi")
            }
        for name, code in pattern.items():
            for step, ch in enumerate(code):
                if ch == "." or (ch == "?" and rng.random() < 0.5):
                    continue
                vel = 1.0 if ch == "x" else 0.55
                t = (
                    bar * bar_s
                    + _step_time(step, step_s, plan["swing"])
                    + rng.normal(0, plan["humanize"])
                )
                if plan["drums"] == "irregular":
                    t += rng.uniform(-0.5, 0.5) * step_s
                _add(buf, int(t * sr), kit[name], vel * rng.uniform(0.85, 1.0))
    return buf


# --------------------------------------------------------------------------------------------
# Harmony, bass lines and melodies -> note events (time s, duration s, midi, velocity)
# --------------------------------------------------------------------------------------------
SCALES = {
    "major": [0, 2, 4, 5, 7, 9, 11],
    "minor": [0, 2, 3, 5, 7, 8, 10],
    "dorian": [0, 2, 3, 5, 7, 9, 10],
    "mixolydian": [0, 2, 4, 5, 7, 9, 10],
    "lydian": [0, 2, 4, 6, 7, 9, 11],
    "phrygian": [0, 1, 3, 5, 7, 8, 10],
    "phrygian_dominant": [0, 1, 4, 5, 7, 8, 10],  # "hijaz": flamenco, Middle East
    "harmonic_minor": [0, 2, 3, 5, 7, 8, 11],
    "pent_major": [0, 2, 4, 7, 9],
    "pent_minor": [0, 3, 5, 7, 10],
    "whole_tone": [0, 2, 4, 6, 8, 10],
    "chromatic": list(range(12)),
}
# Chord roots as scale degrees (0 = tonic), one chord per chord span.
PROGRESSIONS = {
    "pop": [[0, 4, 5, 3], [5, 3, 0, 4], [0, 5, 3, 4], [0, 3, 4, 4]],
    "rock": [[0, 3, 4, 3], [0, 6, 3, 0], [0, 4, 3, 0], [0, 2, 3, 4]],
    "minor": [[0, 5, 2, 6], [0, 3, 4, 0], [0, 6, 5, 6], [0, 0, 5, 6]],
    "folk": [[0, 3, 0, 4], [0, 4, 3, 0], [0, 0, 3, 4]],
    "jazz": [[1, 4, 0, 0], [0, 5, 1, 4], [2, 5, 1, 4]],
    "modal": [[0, 0, 0, 0], [0, 1, 0, 1], [0, 6, 0, 6]],
}


def _note(scale, root: int, degree: int) -> int:
    octave, idx = divmod(degree, len(scale))
    return root + 12 * octave + scale[idx]


def _chord(plan, bar: int, size: int = 3) -> list[int]:
    """Scale-degree triad (or seventh) over the bar's chord root, stacked in thirds of the scale."""
    prog = plan["prog"]
    deg = prog[(bar // plan["chord_bars"]) % len(prog)]
    return [deg + 2 * i for i in range(size)]


def _comp_events(plan, rng) -> list[tuple]:
    """Accompaniment: how the harmony instrument plays the chords."""
    style, scale, root = plan["comp"], plan["scale_steps"], plan["root"] + 48
    step_s, bar_s, steps = plan["step_s"], plan["bar_s"], plan["steps_per_bar"]
    size = 4 if plan["sevenths"] else 3
    ev = []
    if style == "cluster":  # atonal note clusters at random times (Experimental)
        t = 0.0
        while t < plan["duration"]:
            base = root + int(rng.integers(-6, 18))
            dur = rng.uniform(0.5, 4.0)
            ev += [(t, dur, base + k, 0.5) for k in range(int(rng.integers(2, 5)))]
            t += rng.exponential(2.0)
        return ev
    if style == "drone":  # root and fifth held and re-struck every few bars
        span = int(rng.integers(2, 5))
        for bar in range(0, plan["n_bars"], span):
            ev += [(bar * bar_s, span * bar_s, root + d, 0.7) for d in (0, 7, 12)]
        return ev
    arp_div = 2 if rng.random() < 0.6 else 1  # arpeggio in 8ths or 16ths
    strum = [i for i in range(0, steps, 2) if i == 0 or rng.random() < 0.5]
    for bar in range(plan["n_bars"]):
        notes = [_note(scale, root, d) for d in _chord(plan, bar, size)]
        t0 = bar * bar_s
        if style == "block" and bar % plan["chord_bars"] == 0:
            ev += [(t0, plan["chord_bars"] * bar_s * 0.95, m, 0.6) for m in notes]
        elif style == "strum":  # staggered onsets like a guitar strum
            for j, s in enumerate(strum):
                end = strum[j + 1] if j + 1 < len(strum) else steps
                gap = rng.uniform(0.01, 0.025)
                order = notes if j % 2 == 0 else notes[::-1]
                ev += [
                    (t0 + s * step_s + k * gap, (end - s) * step_s, m, 0.6)
                    for k, m in enumerate(order)
                ]
        elif style == "arp":
            seq = notes + [notes[0] + 12]
            for i, s in enumerate(range(0, steps, arp_div)):
                ev.append((t0 + s * step_s, arp_div * step_s * 1.5, seq[i % len(seq)], 0.6))
        elif style == "stab":  # short off-beat chords
            for s in range(2, steps, 4):
                ev += [(t0 + s * step_s, 1.5 * step_s, m, 0.6) for m in notes]
        elif style == "power":  # root + fifth + octave, chugging 8ths
            r = _note(scale, root - 12, _chord(plan, bar)[0])
            for s in range(0, steps, 2):
                ev += [(t0 + s * step_s, 1.8 * step_s, m, 0.7) for m in (r, r + 7, r + 12)]
    return ev


def _bass_events(plan, rng) -> list[tuple]:
    style, scale, root = plan["bass"], plan["scale_steps"], plan["root"] + 36
    step_s, bar_s, steps = plan["step_s"], plan["bar_s"], plan["steps_per_bar"]
    kick = _fit(DRUM_PATTERNS.get(plan["drums"], {}).get("kick", "x" + "." * 15), steps)
    ev = []
    for bar in range(plan["n_bars"]):
        r = _note(scale, root, _chord(plan, bar)[0])
        if r > 47:  # keep the bass in the bass register
            r -= 12
        t0 = bar * bar_s
        if style == "root_whole":
            ev.append((t0, bar_s * 0.95, r, 0.8))
        elif style == "root_8ths":
            ev += [(t0 + s * step_s, 1.8 * step_s, r, 0.8) for s in range(0, steps, 2)]
        elif style == "offbeat":
            ev += [(t0 + s * step_s, 1.5 * step_s, r, 0.8) for s in range(2, steps, 4)]
        elif style == "fifths":
            ev += [
                (t0 + s * step_s, 3.5 * step_s, r + (7 if (s // 4) % 2 else 0), 0.8)
                for s in range(0, steps, 4)
            ]
        elif style == "follow_kick":  # 808 notes that ring until the next kick
            hits = [i for i, c in enumerate(kick) if c != "."] or [0]
            for j, s in enumerate(hits):
                end = hits[j + 1] if j + 1 < len(hits) else steps
                ev.append((t0 + s * step_s, (end - s) * step_s, r, 0.9))
    return ev


def _melody_events(plan, rng) -> list[tuple]:
    """A two-bar motif (rhythm + scale-degree walk) repeated over the chords, with variations."""
    scale, root = plan["scale_steps"], plan["root"] + 60
    step_s, bar_s, steps = plan["step_s"], plan["bar_s"], plan["steps_per_bar"]
    if plan["scale"] == "chromatic":  # free, unquantized atonal line (Experimental)
        ev, t = [], rng.uniform(0, 2)
        while t < plan["duration"]:
            d = rng.uniform(0.1, 1.5)
            ev.append((t, d, root + int(rng.integers(-12, 13)), 0.6))
            t += d + rng.exponential(0.5)
        return ev
    grid = 2 if rng.random() < 0.7 else 1
    onsets = [
        s
        for s in range(0, 2 * steps, grid)
        if rng.random() < plan["melody_density"] * (1.6 if s % 4 == 0 else 0.8)
    ]
    onsets = onsets or [0]
    degrees, d = [], int(rng.integers(0, 5))
    for _ in onsets:
        d = int(np.clip(d + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3]), -3, 9))
        degrees.append(d)
    ev = []
    for bar in range(plan["lead_start"], plan["n_bars"], 2):
        if rng.random() < 0.25:  # leave some phrases out (call and response)
            continue
        shift = _chord(plan, bar)[0] if plan["follow_chords"] else 0
        for j, s in enumerate(onsets):
            end = onsets[j + 1] if j + 1 < len(onsets) else 2 * steps
            deg = degrees[j] + shift + (int(rng.integers(-1, 2)) if rng.random() < 0.2 else 0)
            t = bar * bar_s + s * step_s
            midi = _note(scale, root, deg)
            if plan["ornament"] and rng.random() < 0.3:  # quick grace note from above
                ev.append((t - step_s / 2, step_s / 2, _note(scale, root, deg + 1), 0.5))
            ev.append((t, (end - s) * step_s * rng.uniform(0.6, 1.0), midi, 0.7))
    return ev


def _render_notes(events, play: Instrument, tail: float, n: int, sr: int) -> np.ndarray:
    """Sum note events into a buffer; identical (pitch, length) notes are synthesized once."""
    buf = np.zeros(n, dtype=np.float32)
    cache: dict[tuple[int, int], np.ndarray] = {}
    for t, dur, midi, vel in events:
        key = (int(midi), int((dur + tail) * sr))
        if key[1] <= 0:
            continue
        if key not in cache:
            cache[key] = play(_midi_hz(key[0]), key[1], sr)
        _add(buf, int(t * sr), cache[key], vel)
    return buf


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


# --------------------------------------------------------------------------------------------
# Genre recipes: weighted choices and ranges. Weights overlap across genres on purpose.
# --------------------------------------------------------------------------------------------
CHOICE_FIELDS = (
    "meter",
    "scale",
    "progression",
    "drums",
    "kit",
    "bass",
    "bass_inst",
    "harmony",
    "comp",
    "lead",
    "texture",
)

GENRE_RECIPES: dict[str, dict] = {
    "Electronic": dict(
        mix_db=dict(drums=2, bass=2, harmony=0, lead=-1),
        tone_hz=(8000, 16000),
        tempo=(112, 140),
        meter={"4/4": 1},
        scale={"minor": 3, "dorian": 2, "phrygian": 1, "major": 1},
        progression={"minor": 3, "modal": 1, "pop": 1},
        drums={"four_on_floor": 5, "breakbeat": 2, "halftime": 1},
        kit={"electronic": 1},
        bass={"offbeat": 3, "root_8ths": 2, "follow_kick": 1},
        bass_inst={"bass_saw": 3, "bass_sine": 1, "bass_fm": 1},
        harmony={"pad": 3, "saw": 2, "fm_keys": 1, "bell": 1, "square": 1},
        comp={"block": 2, "stab": 2, "arp": 3},
        lead={"saw": 2, "square": 2, "bell": 1, None: 2},
        texture={"noise_sweep": 1, None: 4},
        melody_density=(0.3, 0.6),
        reverb=(0.1, 0.35),
        drive=(1.0, 2.5),
        n_textures=(0, 1),
    ),
    "Experimental": dict(
        mix_db=dict(drums=-3, bass=-2, harmony=0, lead=-2),
        tone_hz=(3000, 16000),
        tempo=(50, 180),
        meter={"4/4": 2, "7/8": 1, "3/4": 1},
        scale={"whole_tone": 2, "chromatic": 2, "phrygian": 1, "minor": 1},
        progression={"modal": 2, "minor": 1, "jazz": 1},
        drums={"irregular": 3, None: 4, "four_on_floor": 1, "breakbeat": 1},
        kit={"electronic": 2, "acoustic": 1},
        bass={None: 3, "root_whole": 1, "follow_kick": 1},
        bass_inst={"bass_sine": 1, "bass_fm": 1, "bass_808": 1},
        harmony={"bell": 3, "pad": 2, "saw": 1, "organ": 1, "piano": 1},
        comp={"cluster": 3, "drone": 2, "block": 1, "arp": 1},
        lead={"bell": 1, "square": 1, "fm_keys": 1, None: 3},
        texture={"noise_sweep": 2, "glitch": 2, "drone": 2, "granular": 2, "hum": 1, "wind": 1},
        melody_density=(0.1, 0.5),
        reverb=(0.2, 0.7),
        drive=(1.0, 4.0),
        n_textures=(1, 3),
    ),
    "Folk": dict(
        mix_db=dict(drums=-4, bass=-3, harmony=2, lead=0),
        tone_hz=(5000, 10000),
        tempo=(80, 130),
        meter={"4/4": 3, "3/4": 2},
        scale={"major": 4, "mixolydian": 1, "dorian": 1, "minor": 1},
        progression={"folk": 3, "pop": 1, "rock": 1},
        drums={None: 5, "brushes": 2, "hand": 1, "backbeat": 1},
        kit={"soft": 3, "acoustic": 1},
        bass={"fifths": 2, None: 2, "root_whole": 1},
        bass_inst={"bass_pluck": 3, "bass_sine": 1},
        harmony={"pluck": 6, "piano": 1, "organ": 1},
        comp={"strum": 4, "arp": 3, "block": 1},
        lead={"fiddle": 2, "flute": 2, "voice": 2, None: 2, "pluck": 1},
        texture={None: 8, "wind": 1},
        melody_density=(0.3, 0.6),
        reverb=(0.1, 0.4),
        drive=(1.0, 1.3),
        n_textures=(0, 0),
    ),
    "Hip-Hop": dict(
        mix_db=dict(drums=3, bass=4, harmony=-2, lead=-3),
        tone_hz=(3000, 7000),
        tempo=(78, 100),
        meter={"4/4": 1},
        scale={"minor": 3, "dorian": 2, "phrygian": 1, "harmonic_minor": 1},
        progression={"minor": 3, "jazz": 1, "modal": 1},
        drums={"boom_bap": 4, "halftime": 2, "breakbeat": 1},
        kit={"hiphop": 3, "electronic": 1},
        bass={"follow_kick": 2, "root_whole": 2, "root_8ths": 1},
        bass_inst={"bass_808": 3, "bass_sine": 2, "bass_pluck": 1},
        harmony={"fm_keys": 3, "piano": 2, "strings": 1, "pad": 1, "pluck": 1},
        comp={"block": 3, "stab": 1, "arp": 1},
        lead={"bell": 1, "flute": 1, "voice": 2, None: 3, "fm_keys": 1},
        texture={"vinyl": 3, None: 3},
        melody_density=(0.2, 0.5),
        reverb=(0.05, 0.25),
        drive=(1.2, 2.5),
        n_textures=(0, 0),
        swing_p=1.0,  # always a swung, laid-back groove
    ),
    "Instrumental": dict(
        mix_db=dict(drums=-4, bass=-2, harmony=2, lead=1),
        tone_hz=(4000, 9000),
        tempo=(60, 110),
        meter={"4/4": 3, "3/4": 1},
        scale={"major": 3, "minor": 2, "dorian": 1, "lydian": 1},
        progression={"jazz": 2, "pop": 1, "minor": 1, "folk": 1},
        drums={None: 4, "brushes": 1, "halftime": 1, "backbeat": 1},
        kit={"soft": 2, "hiphop": 1, "acoustic": 1},
        bass={"root_whole": 3, None: 1, "fifths": 1},
        bass_inst={"bass_sine": 2, "bass_pluck": 1},
        harmony={"piano": 4, "strings": 3, "pad": 2, "fm_keys": 1, "pluck": 1},
        comp={"block": 2, "arp": 3},
        lead={"strings": 1, "piano": 2, "flute": 1, "bell": 1, None: 1, "fiddle": 1},
        texture={None: 6, "wind": 1, "drone": 1},
        melody_density=(0.2, 0.5),
        reverb=(0.3, 0.6),
        drive=(1.0, 1.2),
        n_textures=(0, 0),
    ),
    "International": dict(
        mix_db=dict(drums=1, bass=-3, harmony=0, lead=2),
        tone_hz=(6000, 14000),
        tempo=(85, 150),
        meter={"4/4": 2, "7/8": 1, "3/4": 1},
        scale={
            "phrygian_dominant": 3,
            "phrygian": 2,
            "pent_minor": 2,
            "pent_major": 2,
            "harmonic_minor": 2,
        },
        progression={"modal": 3, "minor": 1, "folk": 1},
        drums={"hand": 6, "backbeat": 1, None: 1},
        kit={"acoustic": 1, "soft": 1},
        bass={None: 2, "root_whole": 1, "fifths": 1},
        bass_inst={"bass_pluck": 2, "bass_sine": 1},
        harmony={"sitar": 3, "pluck": 2, "organ": 2, "strings": 1},
        comp={"drone": 4, "strum": 2, "arp": 2},
        lead={"flute": 2, "sitar": 2, "fiddle": 2, "voice": 1},
        texture={None: 5, "drone": 1},
        melody_density=(0.4, 0.8),
        reverb=(0.1, 0.4),
        drive=(1.0, 1.5),
        n_textures=(0, 0),
        ornament_p=1.0,  # melodies with grace notes
    ),
    "Pop": dict(
        mix_db=dict(drums=1, bass=0, harmony=0, lead=3),
        tone_hz=(9000, 16000),
        tempo=(90, 130),
        meter={"4/4": 1},
        scale={"major": 5, "minor": 2, "mixolydian": 1},
        progression={"pop": 4, "folk": 1, "minor": 1},
        drums={"backbeat": 4, "four_on_floor": 2, "halftime": 1},
        kit={"electronic": 1, "acoustic": 1, "hiphop": 1},
        bass={"root_8ths": 2, "root_whole": 2, "offbeat": 1},
        bass_inst={"bass_saw": 1, "bass_sine": 1, "bass_pluck": 1, "bass_fm": 1},
        harmony={"piano": 3, "fm_keys": 1, "pad": 2, "pluck": 2, "saw": 1},
        comp={"block": 2, "strum": 2, "arp": 2, "stab": 1},
        lead={"voice": 4, "square": 1, "saw": 1, "flute": 1, "bell": 1, "piano": 1},
        texture={None: 1},
        melody_density=(0.4, 0.7),
        reverb=(0.1, 0.35),
        drive=(1.2, 2.2),
        n_textures=(0, 0),
    ),
    "Rock": dict(
        mix_db=dict(drums=1, bass=0, harmony=3, lead=0),
        tone_hz=(4500, 9000),
        tempo=(100, 170),
        meter={"4/4": 1},
        scale={"major": 2, "mixolydian": 2, "minor": 2, "pent_minor": 1},
        progression={"rock": 4, "pop": 1, "minor": 1},
        drums={"rock": 5, "backbeat": 3},
        kit={"acoustic": 1},
        bass={"root_8ths": 4, "fifths": 1},
        bass_inst={"bass_pluck": 2, "bass_saw": 1},
        harmony={"dist_guitar": 5, "pluck": 2, "organ": 1},
        comp={"power": 4, "strum": 2, "block": 1},
        lead={"dist_guitar": 2, "voice": 2, None: 2, "organ": 1},
        texture={None: 1},
        melody_density=(0.3, 0.6),
        reverb=(0.05, 0.3),
        drive=(1.5, 4.0),
        n_textures=(0, 0),
    ),
}
STEPS_PER_BAR = {"4/4": 16, "3/4": 12, "7/8": 14}


def _draw_style(genre: str, rng) -> dict:
    """An artist's habits: one choice per field plus a preferred tempo."""
    recipe = GENRE_RECIPES[genre]
    style = {f: _choose(rng, recipe[f], RECIPE_FOCUS) for f in CHOICE_FIELDS}
    style["tempo"] = rng.uniform(*recipe["tempo"])
    return style


def plan_track(
    genre: str, seed: int, track_id: int, artist_id: int, duration_s: float
) -> tuple[dict, np.random.Generator]:
    """Draw every musical decision of one track; returns the plan and the RNG for rendering."""
    rng = np.random.default_rng([seed, track_id, 0])
    style = _draw_style(genre, np.random.default_rng([seed, artist_id, 1]))
    recipe = GENRE_RECIPES[genre]
    others = [g for g in GENRE_RECIPES if g != genre]
    plan: dict = {"genre": genre, "duration": float(duration_s)}
    for f in CHOICE_FIELDS:
        if rng.random() < BORROW_P:  # cross-genre influence blurs the class boundaries
            plan[f] = _choose(rng, GENRE_RECIPES[others[rng.integers(len(others))]][f])
        elif rng.random() < ARTIST_CONSISTENCY:
            plan[f] = style[f]
        else:
            plan[f] = _choose(rng, recipe[f], RECIPE_FOCUS)
    lo, hi = recipe["tempo"]
    plan["tempo"] = float(np.clip(style["tempo"] * rng.uniform(0.9, 1.1), lo * 0.9, hi * 1.1))
    if rng.random() < 0.2:  # borrowed tempo feel
        plan["tempo"] = float(
            rng.uniform(*GENRE_RECIPES[others[rng.integers(len(others))]]["tempo"])
        )
    plan["sr"] = int(_choose(rng, SAMPLE_RATES))
    plan["channels"] = 2 if rng.random() < P_STEREO else 1
    plan["root"] = int(rng.integers(0, 12))
    plan["scale_steps"] = SCALES[plan["scale"]]
    progs = PROGRESSIONS[plan["progression"]]
    plan["prog"] = progs[rng.integers(len(progs))]
    plan["steps_per_bar"] = STEPS_PER_BAR[plan["meter"]]
    plan["step_s"] = 60.0 / plan["tempo"] / 4
    plan["bar_s"] = plan["steps_per_bar"] * plan["step_s"]
    plan["n_bars"] = int(math.ceil(duration_s / plan["bar_s"])) + 1
    plan["chord_bars"] = 2 if plan["tempo"] > 135 or rng.random() < 0.3 else 1
    plan["sevenths"] = plan["progression"] == "jazz" or rng.random() < 0.15
    plan["swing"] = (
        float(rng.uniform(0.1, 0.3)) if rng.random() < recipe.get("swing_p", 0.15) else 0.0
    )
    plan["humanize"] = float(rng.uniform(0.0, 0.012))
    plan["melody_density"] = float(rng.uniform(*recipe["melody_density"]))
    plan["follow_chords"] = bool(rng.random() < 0.6)
    plan["ornament"] = bool(rng.random() < recipe.get("ornament_p", 0.05))  # grace notes
    plan["lead_start"] = int(rng.integers(0, 5))
    intro = int(rng.integers(0, 3))
    drum_bars = [b >= intro for b in range(plan["n_bars"])]
    if rng.random() < 0.3:  # a breakdown without drums
        b0 = int(rng.integers(0, plan["n_bars"]))
        for b in range(b0, min(b0 + 2, plan["n_bars"])):
            drum_bars[b] = False
    plan["drum_bars"] = drum_bars
    lo, hi = recipe["n_textures"]
    extra = [_choose(rng, recipe["texture"]) for _ in range(int(rng.integers(lo, hi + 1)))]
    plan["textures"] = sorted({t for t in [plan["texture"], *extra] if t is not None})
    plan["reverb"] = float(rng.uniform(*recipe["reverb"]))
    plan["rt60"] = float(rng.uniform(0.6, 2.5))
    plan["drive"] = float(rng.uniform(*recipe["drive"]))
    plan["mix_db"] = recipe["mix_db"]  # genre production convention: which parts are loud
    # "Production" differences between uploads: tone, low cut, hiss, loudness.
    plan["tone_hz"] = float(np.exp(rng.uniform(*np.log(recipe["tone_hz"]))))
    plan["lowcut_hz"] = float(rng.uniform(20, 120))
    plan["hiss"] = float(np.exp(rng.uniform(np.log(1e-4), np.log(5e-3))))
    plan["peak"] = float(rng.uniform(0.45, 0.8))  # headroom: MP3 decoding overshoots by up to ~15 %
    return plan, rng


def _reverb(x: np.ndarray, sr: int, rt60: float, rng) -> np.ndarray:
    """Convolution with exponentially decaying, darkened noise (a cheap room)."""
    n_ir = int(min(rt60, 1.2) * sr)
    t = np.arange(n_ir) / sr
    ir = _filter(rng.standard_normal(n_ir), "lowpass", 5000, sr) * np.exp(-6.9 * t / rt60)
    ir /= np.sqrt(np.sum(ir**2)) + 1e-9
    return signal.oaconvolve(x, ir.astype(np.float32))[: len(x)]  # float32 FFTs: 2x faster


def render_track(plan: dict, rng) -> np.ndarray:
    """Synthesize a planned track -> float32 array (n,) mono or (n, 2) stereo, peak < 1."""
    sr = SYNTH_SR
    n = int(round(plan["duration"] * sr))
    layers = []  # (signal, gain dB, pan -1..1, reverb send)

    def add_layer(x, gain_db, pan, send):
        x = x.astype(np.float32)
        x /= np.sqrt(np.mean(np.square(x))) + 1e-9  # mix by loudness (rms), then set level
        layers.append((x, gain_db + rng.uniform(-3, 3), float(np.clip(pan, -1, 1)), send))

    if plan["drums"] is not None:
        kit = _drum_kit(plan["kit"], sr, rng)
        add_layer(
            _render_drums(plan, kit, n, sr, rng),
            plan["mix_db"]["drums"],
            rng.uniform(-0.1, 0.1),
            0.3,
        )
    for role, inst_name, events_fn, gain, pan in (
        ("bass", plan["bass_inst"], _bass_events, -3.0, 0.0),
        ("harmony", plan["harmony"], _comp_events, -4.0, rng.uniform(-0.6, 0.6)),
        ("lead", plan["lead"], _melody_events, -3.0, rng.uniform(-0.3, 0.3)),
    ):
        if inst_name is None or (role == "bass" and plan["bass"] is None):
            continue
        factory, fx = INSTRUMENTS[inst_name]
        play, tail = factory(rng)
        x = _render_notes(events_fn(plan, rng), play, tail, n, sr)
        if not np.any(x):
            continue
        add_layer(
            _layer_fx(x, fx, sr, rng),
            gain + plan["mix_db"][role],
            pan,
            1.0 if role != "bass" else 0.1,
        )
    for name in plan["textures"]:
        level = -2.0 if plan["genre"] == "Experimental" else -14.0
        add_layer(_texture(name, plan, n, sr, rng), level, rng.uniform(-0.8, 0.8), 0.5)
    return _finish(plan, _mix(plan, layers, n, sr, rng), rng)


def _mix(plan, layers, n, sr, rng) -> np.ndarray:
    """Pan and sum the layers, add the room, then "production": EQ and loudness -> (2, n)."""
    out = np.zeros((2, n), dtype=np.float32)
    send = np.zeros(n, dtype=np.float32)
    for x, gain_db, pan, rev in layers:
        g = 10 ** (gain_db / 20)
        angle = (pan + 1) * np.pi / 4  # constant-power pan
        out[0] += np.float32(g * math.cos(angle)) * x
        out[1] += np.float32(g * math.sin(angle)) * x
        send += np.float32(g * rev) * x
    if plan["reverb"] > 0 and np.any(send):
        wet = _reverb(send, sr, plan["rt60"], rng) * np.float32(plan["reverb"])
        haas = int(0.011 * sr)  # delayed copy in one channel makes the room sound wide
        out[0] += wet
        out[1, haas:] += wet[: n - haas]
    out /= np.abs(out).max() + 1e-9
    if plan["drive"] > 1.05:  # loud genres are mastered hot: soft clipping squashes peaks
        np.tanh(np.float32(plan["drive"]) * out, out=out)
    # EQ after the clipper: a band-limited signal keeps MP3's overshoot on decoding small.
    return _filter(out, "bandpass", (plan["lowcut_hz"], plan["tone_hz"]), sr).astype(np.float32)


def _finish(plan, out: np.ndarray, rng) -> np.ndarray:
    """Resample (2, n) to the file's rate; add a full-band noise floor; fade edges; set level."""
    sr = plan["sr"]
    n = int(round(plan["duration"] * sr))
    if sr != SYNTH_SR:
        out = soxr.resample(out.T, SYNTH_SR, sr, quality="MQ").T  # content ends at 11 kHz anyway
    out = np.ascontiguousarray(out[:, :n], dtype=np.float32)
    if out.shape[1] < n:
        out = np.pad(out, ((0, 0), (0, n - out.shape[1])))
    tile = rng.standard_normal(sr, dtype=np.float32) * np.float32(plan["hiss"])  # 1-s hiss loop
    reps = -(-n // sr) + 1
    out[0] += np.tile(tile, reps)[:n]
    out[1] += np.tile(tile, reps)[sr // 3 : sr // 3 + n]  # offset copy: decorrelated channels
    fade = min(n, int(0.005 * sr))  # FMA clips are hard cuts; a 5 ms ramp just avoids clicks
    out[:, :fade] *= np.linspace(0, 1, fade, dtype=np.float32)
    out[:, n - fade :] *= np.linspace(1, 0, fade, dtype=np.float32)
    out *= np.float32(plan["peak"]) / (np.abs(out).max() + 1e-9)
    if plan["channels"] == 1:
        return out.mean(axis=0)
    return np.ascontiguousarray(out.T)


def synthesize_track(
    genre: str, seed: int, track_id: int, artist_id: int, duration_s: float
) -> tuple[np.ndarray, int, dict]:
    """Audio (float32, (n,) or (n, 2)), sample rate and plan of one demo track."""
    plan, rng = plan_track(genre, seed, track_id, artist_id, duration_s)
    return render_track(plan, rng), plan["sr"], plan


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def audio_path(root: str | Path, track_id: int, subset: str = "small") -> Path:
    """FMA layout: fma_small/NNN/NNNNNN.mp3 (6-digit id; folder = its first 3 digits)."""
    tid = f"{int(track_id):06d}"
    return Path(root) / f"fma_{subset}" / tid[:3] / f"{tid}.mp3"


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Temp file beside ``path`` that replaces it only when complete (see atomic_path), made
    readable by all like a normally created file (mkstemp's temp files are owner-only)."""
    with atomic_path(path) as tmp:
        yield tmp
        os.chmod(tmp, 0o644)


def _write_mp3(path: Path, audio: np.ndarray, sr: int) -> None:
    with _atomic(path) as tmp:
        sf.write(tmp, audio, sr, format="MP3", compression_level=MP3_COMPRESSION)


def _write_bytes(path: Path, data: bytes) -> None:
    with _atomic(path) as tmp:
        tmp.write_bytes(data)


def _build_track(task: dict) -> dict:
    """Worker: synthesize and write one track (or its deliberate defect). Top-level so it pickles."""
    path, defect = Path(task["path"]), task["defect"]
    info = {"track_id": task["track_id"], "genre": task["genre"], "defect": defect}
    if defect == "missing":
        path.unlink(missing_ok=True)
        return info
    if defect == "empty":
        _write_bytes(path, b"")
        return info
    if defect == "not_audio":
        _write_bytes(path, NOT_AUDIO_BYTES)
        return info
    duration = task["short_s"] if defect == "short" else task["duration_s"]
    audio, sr, plan = synthesize_track(
        task["genre"], task["seed"], task["track_id"], task["artist_id"], duration
    )
    if defect == "truncated":  # a complete MP3 cut short, as after an interrupted download
        with _atomic(path) as tmp:
            sf.write(tmp, audio, sr, format="MP3", compression_level=MP3_COMPRESSION)
            data = tmp.read_bytes()
            tmp.write_bytes(data[: int(len(data) * TRUNCATE_FRACTION)])
    else:
        _write_mp3(path, audio, sr)
    info.update(
        sample_rate=sr,
        channels=1 if audio.ndim == 1 else 2,
        synth_duration_s=round(len(audio) / sr, 3),
        tempo=round(plan["tempo"], 1),
        scale=plan["scale"],
        drums=plan["drums"],
        harmony=plan["harmony"],
        lead=plan["lead"],
    )
    return info


# --------------------------------------------------------------------------------------------
# Metadata in FMA's tracks.csv / genres.csv format
# --------------------------------------------------------------------------------------------
# The real column names, in the real order (alphabetical within each group).
TRACK_COLUMNS: dict[str, list[str]] = {
    "album": [
        "comments",
        "date_created",
        "date_released",
        "engineer",
        "favorites",
        "id",
        "information",
        "listens",
        "producer",
        "tags",
        "title",
        "tracks",
        "type",
    ],
    "artist": [
        "active_year_begin",
        "active_year_end",
        "associated_labels",
        "bio",
        "comments",
        "date_created",
        "favorites",
        "id",
        "latitude",
        "location",
        "longitude",
        "members",
        "name",
        "related_projects",
        "tags",
        "website",
        "wikipedia_page",
    ],
    "set": ["split", "subset"],
    "track": [
        "bit_rate",
        "comments",
        "composer",
        "date_created",
        "date_recorded",
        "duration",
        "favorites",
        "genre_top",
        "genres",
        "genres_all",
        "information",
        "interest",
        "language_code",
        "license",
        "listens",
        "lyricist",
        "number",
        "publisher",
        "tags",
        "title",
    ],
}
_WORDS = [
    "Amber",
    "Echo",
    "Velvet",
    "Static",
    "Lantern",
    "River",
    "Neon",
    "Hollow",
    "Copper",
    "Signal",
    "Paper",
    "Glass",
    "Midnight",
    "Orbit",
    "Willow",
    "Cinder",
    "Harbor",
    "Quiet",
    "Electric",
    "Golden",
]
_NOUNS = [
    "Oscillators",
    "Foxes",
    "Machines",
    "Pines",
    "Collective",
    "Ensemble",
    "Tapes",
    "Lights",
    "Waves",
    "Choir",
]
_PLACES = [
    ("Berlin, Germany", 52.52, 13.40),
    ("Brooklyn, NY", 40.68, -73.94),
    ("Lyon, France", 45.76, 4.84),
    ("Lagos, Nigeria", 6.52, 3.38),
    ("Montreal, Canada", 45.50, -73.57),
    ("Lausanne, Switzerland", 46.52, 6.63),
    (None, None, None),
]
_LICENSES = [
    "Attribution-NonCommercial-ShareAlike 3.0 International",
    "Attribution-Noncommercial-No Derivative Works 3.0 United States",
    "Attribution 4.0 International",
    "Creative Commons Attribution-NonCommercial-NoDerivatives 4.0",
]


def _date(rng, first_year=2008, last_year=2017) -> str:
    seconds = int(rng.integers(0, (last_year - first_year + 1) * 365 * 86400))
    day = pd.Timestamp(f"{first_year}-01-01") + pd.Timedelta(seconds=seconds)
    return day.strftime("%Y-%m-%d %H:%M:%S")


def _catalogue(tracks_per_genre: int, seed: int) -> list[dict]:
    """Who is who: track ids, genres, splits (artist-disjoint), subsets and defects."""
    rng = np.random.default_rng([seed, 20170])
    names = list(GENRES)
    n = tracks_per_genre
    n_val = n_test = max(1, round(0.1 * n)) if n >= 3 else 0
    rows, artist = [], FIRST_ARTIST_ID
    for genre in names:
        splits = ["training"] * (n - n_val - n_test) + ["validation"] * n_val + ["test"] * n_test
        for split in ("training", "validation", "test"):  # each split has its own artists
            count = splits.count(split)
            per_artist = 4 if split == "training" else 2
            for i in range(count):
                if i % per_artist == 0:
                    artist += 1
                rows.append(
                    {
                        "genre": genre,
                        "split": split,
                        "subset": "small",
                        "artist_id": artist,
                        "defect": None,
                    }
                )
    ids = FIRST_TRACK_ID + rng.permutation(len(rows))  # genres interleaved as in the real catalogue
    for row, tid in zip(rows, ids):
        row["track_id"] = int(tid)
    rows.sort(key=lambda r: r["track_id"])
    next_id = FIRST_TRACK_ID + len(rows)
    for defect, genre in zip(DEFECTS, DEFECT_GENRES):
        artist += 1
        rows.append(
            {
                "track_id": next_id,
                "genre": genre,
                "split": "training",
                "subset": "small",
                "artist_id": artist,
                "defect": defect,
            }
        )
        next_id += 1
    for k in range(N_MEDIUM_ROWS + N_LARGE_ROWS):
        artist += 1
        subset = "medium" if k < N_MEDIUM_ROWS else "large"
        genre = names[k % len(names)]
        if subset == "large" and k % 2:  # mixed fine genres -> no genre_top, as often in fma_large
            genre = None
        split = str(rng.choice(["training", "training", "training", "validation", "test"]))
        rows.append(
            {
                "track_id": next_id,
                "genre": genre,
                "split": split,
                "subset": subset,
                "artist_id": artist,
                "defect": None,
            }
        )
        next_id += 1
    return rows


def _genre_lists(row: dict, rng) -> tuple[list[int], list[int]]:
    genre = row["genre"]
    if genre is None:  # two fine genres of different top genres
        a, b = rng.choice(list(GENRES), 2, replace=False)
        genres = sorted([SUBGENRES[a][0], SUBGENRES[b][0]])
        return genres, sorted(set(genres) | {GENRES[a], GENRES[b]})
    top, (sub, _) = GENRES[genre], SUBGENRES[genre]
    genres = [sub] if rng.random() < 0.4 else [top]
    return genres, sorted({top, *genres})


def _tracks_frame(rows: list[dict], duration_s: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 1235])
    artists: dict[int, dict] = {}
    records = []
    for row in rows:
        aid = row["artist_id"]
        if aid not in artists:  # artist- and album-level fields are shared by its tracks
            place, lat, lon = _PLACES[rng.integers(len(_PLACES))]
            name = f"The {_WORDS[rng.integers(len(_WORDS))]} {_NOUNS[rng.integers(len(_NOUNS))]}"
            artists[aid] = {
                ("artist", "active_year_begin"): f"{rng.integers(1990, 2012)}-01-01 00:00:00"
                if rng.random() < 0.3
                else None,
                ("artist", "active_year_end"): None,
                ("artist", "associated_labels"): None,
                ("artist", "bio"): f"<p>{name} is a synthetic demo artist (seed {seed}).</p>",
                ("artist", "comments"): int(rng.integers(0, 3)),
                ("artist", "date_created"): _date(rng),
                ("artist", "favorites"): int(rng.integers(0, 40)),
                ("artist", "id"): aid,
                ("artist", "latitude"): lat,
                ("artist", "location"): place,
                ("artist", "longitude"): lon,
                ("artist", "members"): None,
                ("artist", "name"): name,
                ("artist", "related_projects"): None,
                ("artist", "tags"): str(["demo", name.split()[1].lower()]),
                ("artist", "website"): f"http://www.example.org/{name.split()[1].lower()}",
                ("artist", "wikipedia_page"): None,
                ("album", "comments"): 0,
                ("album", "date_created"): _date(rng),
                ("album", "date_released"): _date(rng) if rng.random() < 0.7 else None,
                ("album", "engineer"): None,
                ("album", "favorites"): int(rng.integers(0, 10)),
                ("album", "id"): FIRST_ALBUM_ID + aid - FIRST_ARTIST_ID,
                ("album", "information"): "<p>Synthesized for the offline demo.</p>",
                ("album", "listens"): int(rng.integers(100, 50000)),
                ("album", "producer"): None,
                ("album", "tags"): "[]",
                (
                    "album",
                    "title",
                ): f"{_WORDS[rng.integers(len(_WORDS))]} {_NOUNS[rng.integers(len(_NOUNS))]}",
                ("album", "tracks"): 0,  # filled below
                ("album", "type"): str(
                    rng.choice(["Album", "Album", "Single Tracks", "Live Performance"])
                ),
                "_number": 0,
            }
        a = artists[aid]
        a["_number"] += 1
        genres, genres_all = _genre_lists(row, rng)
        rec = {k: v for k, v in a.items() if k != "_number"}
        rec.update(
            {
                ("set", "split"): row["split"],
                ("set", "subset"): row["subset"],
                ("track", "bit_rate"): int(rng.choice([320000, 256000, 192000, 128000])),
                ("track", "comments"): int(rng.integers(0, 3)),
                ("track", "composer"): None,
                ("track", "date_created"): _date(rng),
                ("track", "date_recorded"): _date(rng, 2000, 2008) if rng.random() < 0.2 else None,
                # Metadata duration: the nominal clip length, also for broken files (like FMA).
                ("track", "duration"): int(round(duration_s)),
                ("track", "favorites"): int(rng.integers(0, 20)),
                ("track", "genre_top"): row["genre"],
                ("track", "genres"): str(genres),
                ("track", "genres_all"): str(genres_all),
                ("track", "information"): None,
                ("track", "interest"): int(rng.integers(100, 20000)),
                ("track", "language_code"): "en" if rng.random() < 0.5 else None,
                ("track", "license"): _LICENSES[rng.integers(len(_LICENSES))],
                ("track", "listens"): int(rng.integers(50, 10000)),
                ("track", "lyricist"): None,
                ("track", "number"): a["_number"],
                ("track", "publisher"): None,
                ("track", "tags"): str(["demo"] + (["synthetic"] if rng.random() < 0.5 else [])),
                ("track", "title"): f"{_WORDS[rng.integers(len(_WORDS))]} {rng.integers(1, 99)}",
            }
        )
        records.append((row["track_id"], aid, rec))
    for _, aid, rec in records:
        rec[("album", "tracks")] = artists[aid]["_number"]
    columns = pd.MultiIndex.from_tuples([(g, c) for g, cols in TRACK_COLUMNS.items() for c in cols])
    df = pd.DataFrame(
        [rec for _, _, rec in records],
        index=pd.Index([tid for tid, _, _ in records], name="track_id"),
    )
    return df.reindex(columns=columns)


def _genres_frame(tracks: pd.DataFrame) -> pd.DataFrame:
    import ast

    counts = Counter(g for cell in tracks[("track", "genres_all")] for g in ast.literal_eval(cell))
    rows = [(gid, counts[gid], 0, title, gid) for title, gid in GENRES.items()]
    rows += [
        (sid, counts[sid], GENRES[top], title, GENRES[top])
        for top, (sid, title) in SUBGENRES.items()
    ]
    df = pd.DataFrame(sorted(rows), columns=["genre_id", "#tracks", "parent", "title", "top_level"])
    return df


def _write_csv(df: pd.DataFrame, path: Path, **kwargs) -> None:
    with _atomic(path) as tmp:
        df.to_csv(tmp, **kwargs)


def _remove_stale_audio(root: Path, keep: set[int]) -> None:
    """Delete demo-range mp3s (id >= 900000) of an earlier, larger generation; never real FMA files."""
    small = root / "fma_small"
    if not small.is_dir():
        return
    for p in small.glob("9[0-9][0-9]/*.mp3"):
        if p.stem.isdigit() and int(p.stem) >= FIRST_TRACK_ID and int(p.stem) not in keep:
            p.unlink()


def _readme(summary: dict) -> str:
    bad = "\n".join(f"  {tid:06d}  {defect}" for tid, defect in summary["bad_files"].items())
    return f"""Synthetic FMA-style demo dataset (music_genre.demo_data)
=========================================================
NOT real music: clips synthesized from per-genre recipes (tempo, drum pattern, instruments,
mode and chord progression), for running the project offline. Same layout as the real FMA:
  fma_metadata/tracks.csv, fma_metadata/genres.csv, fma_small/NNN/NNNNNN.mp3

seed={summary["seed"]}  tracks_per_genre={summary["tracks_per_genre"]}  duration_s={summary["duration_s"]}
track ids {FIRST_TRACK_ID}.. (never collide with real FMA ids)
rows in tracks.csv: {summary["n_tracks_listed"]} (subset counts {summary["counts"]["subset"]})
small-subset splits: {summary["counts"]["split"]}
.mp3 files written: {summary["n_mp3_files"]} (including the empty and the not-audio one)
sample rates: {summary["counts"]["sample_rate"]}  channels: {summary["counts"]["channels"]}

Deliberately broken files (listed as subset small, like 099134/108925/133297 in fma_small):
{bad}
  empty = 0-byte file; not_audio = HTML bytes named .mp3; short = valid MP3 of a few seconds;
  truncated = valid MP3 cut to {int(TRUNCATE_FRACTION * 100)} % of its bytes; missing = listed, no file.
  tracks.csv gives the nominal duration for all of them (the metadata is wrong, as in FMA).
Medium/large rows have no audio (as in the fma_small download). tracks.csv is written last:
its presence means the generation finished. Per-track details: demo_manifest.json.
"""


def generate_demo_dataset(
    root: str | Path,
    tracks_per_genre: int = 30,
    duration_s: float = 30.0,
    seed: int = 0,
    workers: int | None = None,
) -> dict:
    """Write the demo dataset under ``root``; returns a summary (counts, bad files, elapsed s).

    Deterministic in ``seed``; the output does not depend on ``workers`` (default: all CPUs).
    """
    start = time.perf_counter()
    if tracks_per_genre < 1 or duration_s <= 0:
        raise ValueError("tracks_per_genre must be >= 1 and duration_s > 0")
    root = Path(root)
    meta_dir = root / "fma_metadata"
    (meta_dir / "tracks.csv").unlink(missing_ok=True)  # "complete" marker goes until we finish
    rows = _catalogue(tracks_per_genre, seed)
    small = [r for r in rows if r["subset"] == "small"]
    _remove_stale_audio(root, {r["track_id"] for r in small if r["defect"] != "missing"})
    tasks = [
        {
            "track_id": r["track_id"],
            "genre": r["genre"],
            "artist_id": r["artist_id"],
            "defect": r["defect"],
            "seed": seed,
            "duration_s": float(duration_s),
            "short_s": min(3.0, duration_s / 2),
            "path": str(audio_path(root, r["track_id"])),
        }
        for r in small
    ]
    workers = max(1, workers or os.cpu_count() or 1)
    if workers == 1:
        infos = [_build_track(t) for t in tasks]
    else:  # spawn: safe even when the caller has threads (TensorFlow, Kedro runners)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            infos = list(pool.map(_build_track, tasks, chunksize=1))
    tracks = _tracks_frame(rows, duration_s, seed)
    genres = _genres_frame(tracks)
    written = [i for i in infos if "sample_rate" in i]
    summary = {
        "root": str(root),
        "seed": seed,
        "tracks_per_genre": tracks_per_genre,
        "duration_s": float(duration_s),
        "n_tracks_listed": len(tracks),
        "n_mp3_files": sum(1 for i in infos if i["defect"] != "missing"),  # incl. empty/not_audio
        "counts": {
            "subset": dict(Counter(r["subset"] for r in rows)),
            "split": dict(Counter(r["split"] for r in small)),
            "genre": dict(sorted(Counter(r["genre"] for r in small).items())),
            "sample_rate": dict(sorted(Counter(i["sample_rate"] for i in written).items())),
            "channels": dict(sorted(Counter(i["channels"] for i in written).items())),
        },
        "bad_files": {r["track_id"]: r["defect"] for r in small if r["defect"]},
    }
    manifest = {**summary, "tracks": infos}
    _write_bytes(root / "demo_manifest.json", json.dumps(manifest, indent=1, default=str).encode())
    _write_bytes(root / "README.txt", _readme(summary).encode())
    _write_csv(genres, meta_dir / "genres.csv", index=False)
    _write_csv(tracks, meta_dir / "tracks.csv")  # last: marks the dataset as complete
    summary["elapsed_s"] = round(time.perf_counter() - start, 2)
    summary["workers"] = workers
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="genre-demo-data", description="Generate a synthetic FMA-style demo dataset (offline)."
    )
    parser.add_argument(
        "--root", default="data/01_raw/demo", help="output folder (default: %(default)s)"
    )
    parser.add_argument("--tracks-per-genre", type=int, default=30)
    parser.add_argument("--duration", type=float, default=30.0, help="clip length in seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    parser.add_argument("--force", action="store_true", help="regenerate even if tracks.csv exists")
    args = parser.parse_args(argv)
    tracks_csv = Path(args.root) / "fma_metadata" / "tracks.csv"
    if tracks_csv.exists() and not args.force:
        print(f"demo dataset already present ({tracks_csv}); use --force to regenerate")
        return 0
    s = generate_demo_dataset(
        args.root, args.tracks_per_genre, args.duration, args.seed, args.workers
    )
    print(
        f"wrote {s['n_mp3_files']} .mp3 files / {s['n_tracks_listed']} tracks.csv rows to {s['root']}"
        f" in {s['elapsed_s']} s ({s['workers']} workers)"
    )
    print("deliberately bad files: " + ", ".join(f"{t:06d}={d}" for t, d in s["bad_files"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
