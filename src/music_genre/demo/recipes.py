"""Genre recipes: per genre, weighted style choices and ranges (tempo, mix, production)."""

from __future__ import annotations

# --------------------------------------------------------------------------------------------
# Genre recipes: weighted choices and ranges. Weights overlap across genres on purpose.
# --------------------------------------------------------------------------------------------
CHOICE_FIELDS = ("meter", "scale", "progression", "drums", "kit", "bass", "bass_inst", "harmony", "comp", "lead", "texture")

GENRE_RECIPES: dict[str, dict] = {
    "Electronic": dict(
        mix_db=dict(drums=2, bass=2, harmony=0, lead=-1),
        tone_hz=(8000, 16000),
        tempo=(112, 140), meter={"4/4": 1}, scale={"minor": 3, "dorian": 2, "phrygian": 1, "major": 1},
        progression={"minor": 3, "modal": 1, "pop": 1}, drums={"four_on_floor": 5, "breakbeat": 2, "halftime": 1},
        kit={"electronic": 1}, bass={"offbeat": 3, "root_8ths": 2, "follow_kick": 1},
        bass_inst={"bass_saw": 3, "bass_sine": 1, "bass_fm": 1},
        harmony={"pad": 3, "saw": 2, "fm_keys": 1, "bell": 1, "square": 1}, comp={"block": 2, "stab": 2, "arp": 3},
        lead={"saw": 2, "square": 2, "bell": 1, None: 2}, texture={"noise_sweep": 1, None: 4},
        melody_density=(0.3, 0.6), reverb=(0.1, 0.35), drive=(1.0, 2.5), n_textures=(0, 1),
    ),
    "Experimental": dict(
        mix_db=dict(drums=-3, bass=-2, harmony=0, lead=-2),
        tone_hz=(3000, 16000),
        tempo=(50, 180), meter={"4/4": 2, "7/8": 1, "3/4": 1},
        scale={"whole_tone": 2, "chromatic": 2, "phrygian": 1, "minor": 1},
        progression={"modal": 2, "minor": 1, "jazz": 1}, drums={"irregular": 3, None: 4, "four_on_floor": 1, "breakbeat": 1},
        kit={"electronic": 2, "acoustic": 1}, bass={None: 3, "root_whole": 1, "follow_kick": 1},
        bass_inst={"bass_sine": 1, "bass_fm": 1, "bass_808": 1},
        harmony={"bell": 3, "pad": 2, "saw": 1, "organ": 1, "piano": 1}, comp={"cluster": 3, "drone": 2, "block": 1, "arp": 1},
        lead={"bell": 1, "square": 1, "fm_keys": 1, None: 3},
        texture={"noise_sweep": 2, "glitch": 2, "drone": 2, "granular": 2, "hum": 1, "wind": 1},
        melody_density=(0.1, 0.5), reverb=(0.2, 0.7), drive=(1.0, 4.0), n_textures=(1, 3),
    ),
    "Folk": dict(
        mix_db=dict(drums=-4, bass=-3, harmony=2, lead=0),
        tone_hz=(5000, 10000),
        tempo=(80, 130), meter={"4/4": 3, "3/4": 2}, scale={"major": 4, "mixolydian": 1, "dorian": 1, "minor": 1},
        progression={"folk": 3, "pop": 1, "rock": 1}, drums={None: 5, "brushes": 2, "hand": 1, "backbeat": 1},
        kit={"soft": 3, "acoustic": 1}, bass={"fifths": 2, None: 2, "root_whole": 1},
        bass_inst={"bass_pluck": 3, "bass_sine": 1},
        harmony={"pluck": 6, "piano": 1, "organ": 1}, comp={"strum": 4, "arp": 3, "block": 1},
        lead={"fiddle": 2, "flute": 2, "voice": 2, None: 2, "pluck": 1}, texture={None: 8, "wind": 1},
        melody_density=(0.3, 0.6), reverb=(0.1, 0.4), drive=(1.0, 1.3), n_textures=(0, 0),
    ),
    "Hip-Hop": dict(
        mix_db=dict(drums=3, bass=4, harmony=-2, lead=-3),
        tone_hz=(3000, 7000),
        tempo=(78, 100), meter={"4/4": 1}, scale={"minor": 3, "dorian": 2, "phrygian": 1, "harmonic_minor": 1},
        progression={"minor": 3, "jazz": 1, "modal": 1}, drums={"boom_bap": 4, "halftime": 2, "breakbeat": 1},
        kit={"hiphop": 3, "electronic": 1}, bass={"follow_kick": 2, "root_whole": 2, "root_8ths": 1},
        bass_inst={"bass_808": 3, "bass_sine": 2, "bass_pluck": 1},
        harmony={"fm_keys": 3, "piano": 2, "strings": 1, "pad": 1, "pluck": 1}, comp={"block": 3, "stab": 1, "arp": 1},
        lead={"bell": 1, "flute": 1, "voice": 2, None: 3, "fm_keys": 1}, texture={"vinyl": 3, None: 3},
        melody_density=(0.2, 0.5), reverb=(0.05, 0.25), drive=(1.2, 2.5), n_textures=(0, 0),
        swing_p=1.0,  # always a swung, laid-back groove
    ),
    "Instrumental": dict(
        mix_db=dict(drums=-4, bass=-2, harmony=2, lead=1),
        tone_hz=(4000, 9000),
        tempo=(60, 110), meter={"4/4": 3, "3/4": 1}, scale={"major": 3, "minor": 2, "dorian": 1, "lydian": 1},
        progression={"jazz": 2, "pop": 1, "minor": 1, "folk": 1}, drums={None: 4, "brushes": 1, "halftime": 1, "backbeat": 1},
        kit={"soft": 2, "hiphop": 1, "acoustic": 1}, bass={"root_whole": 3, None: 1, "fifths": 1},
        bass_inst={"bass_sine": 2, "bass_pluck": 1},
        harmony={"piano": 4, "strings": 3, "pad": 2, "fm_keys": 1, "pluck": 1}, comp={"block": 2, "arp": 3},
        lead={"strings": 1, "piano": 2, "flute": 1, "bell": 1, None: 1, "fiddle": 1}, texture={None: 6, "wind": 1, "drone": 1},
        melody_density=(0.2, 0.5), reverb=(0.3, 0.6), drive=(1.0, 1.2), n_textures=(0, 0),
    ),
    "International": dict(
        mix_db=dict(drums=1, bass=-3, harmony=0, lead=2),
        tone_hz=(6000, 14000),
        tempo=(85, 150), meter={"4/4": 2, "7/8": 1, "3/4": 1},
        scale={"phrygian_dominant": 3, "phrygian": 2, "pent_minor": 2, "pent_major": 2, "harmonic_minor": 2},
        progression={"modal": 3, "minor": 1, "folk": 1}, drums={"hand": 6, "backbeat": 1, None: 1},
        kit={"acoustic": 1, "soft": 1}, bass={None: 2, "root_whole": 1, "fifths": 1},
        bass_inst={"bass_pluck": 2, "bass_sine": 1},
        harmony={"sitar": 3, "pluck": 2, "organ": 2, "strings": 1}, comp={"drone": 4, "strum": 2, "arp": 2},
        lead={"flute": 2, "sitar": 2, "fiddle": 2, "voice": 1}, texture={None: 5, "drone": 1},
        melody_density=(0.4, 0.8), reverb=(0.1, 0.4), drive=(1.0, 1.5), n_textures=(0, 0),
        ornament_p=1.0,  # melodies with grace notes
    ),
    "Pop": dict(
        mix_db=dict(drums=1, bass=0, harmony=0, lead=3),
        tone_hz=(9000, 16000),
        tempo=(90, 130), meter={"4/4": 1}, scale={"major": 5, "minor": 2, "mixolydian": 1},
        progression={"pop": 4, "folk": 1, "minor": 1}, drums={"backbeat": 4, "four_on_floor": 2, "halftime": 1},
        kit={"electronic": 1, "acoustic": 1, "hiphop": 1}, bass={"root_8ths": 2, "root_whole": 2, "offbeat": 1},
        bass_inst={"bass_saw": 1, "bass_sine": 1, "bass_pluck": 1, "bass_fm": 1},
        harmony={"piano": 3, "fm_keys": 1, "pad": 2, "pluck": 2, "saw": 1}, comp={"block": 2, "strum": 2, "arp": 2, "stab": 1},
        lead={"voice": 4, "square": 1, "saw": 1, "flute": 1, "bell": 1, "piano": 1}, texture={None: 1},
        melody_density=(0.4, 0.7), reverb=(0.1, 0.35), drive=(1.2, 2.2), n_textures=(0, 0),
    ),
    "Rock": dict(
        mix_db=dict(drums=1, bass=0, harmony=3, lead=0),
        tone_hz=(4500, 9000),
        tempo=(100, 170), meter={"4/4": 1}, scale={"major": 2, "mixolydian": 2, "minor": 2, "pent_minor": 1},
        progression={"rock": 4, "pop": 1, "minor": 1}, drums={"rock": 5, "backbeat": 3},
        kit={"acoustic": 1}, bass={"root_8ths": 4, "fifths": 1},
        bass_inst={"bass_pluck": 2, "bass_saw": 1},
        harmony={"dist_guitar": 5, "pluck": 2, "organ": 1}, comp={"power": 4, "strum": 2, "block": 1},
        lead={"dist_guitar": 2, "voice": 2, None: 2, "organ": 1}, texture={None: 1},
        melody_density=(0.3, 0.6), reverb=(0.05, 0.3), drive=(1.5, 4.0), n_textures=(0, 0),
    ),
}
STEPS_PER_BAR = {"4/4": 16, "3/4": 12, "7/8": 14}
