"""Scales, chord progressions, bass lines and melodies as note events, and their rendering."""

from __future__ import annotations

import numpy as np

from music_genre.demo.drums import DRUM_PATTERNS, _fit
from music_genre.demo.dsp import _add, _midi_hz
from music_genre.demo.instruments import Instrument

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
