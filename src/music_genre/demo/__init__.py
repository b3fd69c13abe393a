"""Deterministic offline demo dataset in the exact layout of the FMA (Free Music Archive).

``generate_demo_dataset(root)`` writes, under ``root``::

    fma_metadata/tracks.csv   FMA's format: two header rows (+ the ``track_id`` row), groups
                              album / artist / set / track with the real column names
    fma_metadata/genres.csv   genre_id,#tracks,parent,title,top_level (real FMA ids)
    fma_small/NNN/NNNNNN.mp3  synthesized ~30-s music clips, track ids from 900000
    README.txt, demo_manifest.json

How a genre recipe becomes a track:

1. ``recipes``: each genre is a recipe of weighted choices and ranges (tempo, meter, scale,
   chord progression, drum pattern and kit, bass line, instruments, textures, mix levels, tone).
   Weights overlap across genres on purpose.
2. ``arrangement.plan_track``: draws every decision of one track from its genre's recipe, its
   artist's habits (tracks of one artist sound alike) and, now and then, another genre's recipe
   (borrowing blurs the class boundaries). RNGs are seeded by ``(seed, track_id)`` and
   ``(seed, artist_id)``, so the output does not depend on the number of worker processes.
3. ``harmony`` turns the plan into note events (chords, bass line, melody); ``instruments``
   plays them (additive, FM, Karplus-Strong, subtractive); ``drums`` places one-shot samples on
   a 16th-note grid; ``textures`` adds noise layers. ``dsp`` holds the shared signal helpers.
4. ``mixing.render_track``: levels, pans and sums the layers, adds a room, masters the mix and
   resamples it to the file's rate and channel count.
5. ``fma_layout.generate_demo_dataset``: writes the mp3s, tracks.csv and genres.csv in FMA's
   format, and, like the real ``fma_small``, a few listed tracks broken on purpose (empty, not
   audio, too short, truncated, missing) so error paths get exercised.

Classifying the result is a real task rather than a lookup: mean MFCCs + logistic regression
reach ~0.7 in 5-fold CV on the default demo (chance 0.125).

Command line: ``genre-demo-data --root data/01_raw/demo`` (``cli.main``).
"""

from music_genre.demo.cli import main
from music_genre.demo.fma_layout import (
    DEFECTS,
    GENRES,
    N_LARGE_ROWS,
    N_MEDIUM_ROWS,
    TRACK_COLUMNS,
    audio_path,
    generate_demo_dataset,
)
from music_genre.demo.mixing import synthesize_track

__all__ = [
    "DEFECTS",
    "GENRES",
    "N_LARGE_ROWS",
    "N_MEDIUM_ROWS",
    "TRACK_COLUMNS",
    "audio_path",
    "generate_demo_dataset",
    "main",
    "synthesize_track",
]
