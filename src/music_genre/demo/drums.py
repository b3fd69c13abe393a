"""Drum kits (one-shot samples drawn per track) and step patterns placed on a 16th-note grid."""

from __future__ import annotations

import numpy as np

from music_genre.demo.dsp import _add, _decay, _filter, _ramp


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
