"""A track's plan: every musical decision drawn from its genre recipe, its artist and its seed."""

from __future__ import annotations

import math

import numpy as np

from music_genre.demo.dsp import _choose
from music_genre.demo.harmony import PROGRESSIONS, SCALES
from music_genre.demo.recipes import CHOICE_FIELDS, GENRE_RECIPES, STEPS_PER_BAR

# Real FMA files: mostly 44.1 kHz stereo, some 48 / 22.05 kHz, some mono.
SAMPLE_RATES = {44_100: 0.70, 48_000: 0.15, 22_050: 0.15}
P_STEREO = 0.8

# Difficulty knobs: chance that a track takes one style choice from another genre's recipe,
# and chance that a track keeps its artist's choice (tracks of one artist sound alike).
BORROW_P = 0.08
ARTIST_CONSISTENCY = 0.6
RECIPE_FOCUS = 2.0  # exponent on recipe weights: higher = more stereotyped genres


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
