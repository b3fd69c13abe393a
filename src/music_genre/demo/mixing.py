"""Rendering a plan: layers -> pan, room, mastering -> the file's rate and channels."""

from __future__ import annotations

import math

import numpy as np
import soxr
from scipy import signal

from music_genre.demo.arrangement import plan_track
from music_genre.demo.drums import _drum_kit, _render_drums
from music_genre.demo.dsp import SYNTH_SR, _filter
from music_genre.demo.harmony import _bass_events, _comp_events, _melody_events, _render_notes
from music_genre.demo.instruments import INSTRUMENTS, _layer_fx
from music_genre.demo.textures import _texture


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
