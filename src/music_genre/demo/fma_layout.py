# Over 400 lines: every file of FMA's layout (audio, tracks.csv, genres.csv, README) together.
"""FMA's layout on disk: the mp3 files (and the deliberately broken ones), tracks.csv,
genres.csv, README.txt and demo_manifest.json; ``generate_demo_dataset`` writes them all."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from music_genre.demo.mixing import synthesize_track
from music_genre.infra.atomic import atomic_path

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
MP3_COMPRESSION = 0.7  # libsndfile VBR quality: ~85 kbit/s, 15 kHz band, ~20 % faster than 0.0


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
    n_val = test_count = max(1, round(0.1 * n)) if n >= 3 else 0
    rows: list[dict] = []
    artist = FIRST_ARTIST_ID
    for genre in names:
        splits = (
            ["training"] * (n - n_val - test_count) + ["validation"] * n_val + ["test"] * test_count
        )
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
    for row, tid in zip(rows, ids, strict=True):
        row["track_id"] = int(tid)
    rows.sort(key=lambda r: int(r["track_id"] or 0))  # every row has its id by now
    next_id = FIRST_TRACK_ID + len(rows)
    for defect, genre in zip(DEFECTS, DEFECT_GENRES, strict=True):
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
        # mixed fine genres -> no genre_top, as often in fma_large
        fine_mix = subset == "large" and k % 2
        top_genre = None if fine_mix else names[k % len(names)]
        split = str(rng.choice(["training", "training", "training", "validation", "test"]))
        rows.append(
            {
                "track_id": next_id,
                "genre": top_genre,
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
    tracks_per_genre: int = 16,
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
