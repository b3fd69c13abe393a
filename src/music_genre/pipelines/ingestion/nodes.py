"""Ingestion: raw metadata + audio files -> one clean track table and a bad-tracks report."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from music_genre.audio.decode import AUDIO_EXTENSIONS, AudioFile
from music_genre.config import IngestionParams, node_settings
from music_genre.contracts import BAD_TRACK_COLUMNS, SPLITS, genre_labels
from music_genre.datasets import AudioCollection
from music_genre.errors import CollectionError
from music_genre.infra.location import absolute, file_stamp, is_url, join
from music_genre.infra.parallel import TaskFailure, run_tasks

from .splits import GROUP_COLUMN, grouped_split

logger = logging.getLogger(__name__)

TRACK_COLUMNS = [
    "track_id",
    "path",
    "genre",
    "label",
    "split",
    "duration_s",
    "sample_rate",
    "channels",
]


# What a node receives as ``params:ingestion``: Kedro's dict, or the validated model.
Params = Mapping[str, Any] | IngestionParams


def _settings(params: Params) -> IngestionParams:
    return node_settings(IngestionParams, params)


def fma_track_path(track_id: int) -> str:
    """FMA's layout: track 2 -> ``000/000002.mp3`` (folder = first 3 of 6 digits)."""
    name = f"{int(track_id):06d}"
    return f"{name[:3]}/{name}.mp3"


def select_candidate_tracks(
    collection: AudioCollection, params: Params
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """List the tracks to probe, and reject what metadata alone shows to be unusable.

    Returns (candidates, rejected); candidates have track_id, path, genre, split (split is
    empty for a folder collection until ``build_track_table`` assigns it).
    """
    if collection.source == "fma":
        candidates, rejected = _fma_candidates(collection, _settings(params).known_bad_tracks)
    else:
        candidates, rejected = _folder_candidates(collection)
    candidates, duplicates = _split_off_duplicates(candidates, collection.source)
    rejected = pd.concat([rejected, duplicates], ignore_index=True)
    logger.info(
        "%d candidate tracks, %d rejected from metadata alone", len(candidates), len(rejected)
    )
    return candidates.reset_index(drop=True), _bad_tracks_frame(rejected)


def _fma_candidates(
    collection: AudioCollection, known_bad_tracks: Mapping[int, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    tracks = collection.tracks
    # FMA's subsets are nested (small ⊂ medium ⊂ large): an ordered categorical selects them.
    subset = tracks[("set", "subset")].astype(
        pd.CategoricalDtype(["small", "medium", "large"], ordered=True)
    )
    selected = tracks[subset <= collection.subset]
    if selected.empty:
        raise ValueError(
            f"No track of subset {collection.subset!r} in "
            f"{collection.root}/fma_metadata/tracks.csv: check ingestion.subset."
        )
    table = pd.DataFrame(
        {
            "track_id": [f"{int(i):06d}" for i in selected.index],
            "relpath": [fma_track_path(i) for i in selected.index],
            "genre": selected[("track", "genre_top")].to_numpy(),
            "split": selected[("set", "split")].to_numpy(),
        }
    )
    audio_dir = join(absolute(collection.root), f"fma_{collection.subset}")
    table["path"] = [
        collection.files[rel].path if rel in collection.files else join(audio_dir, rel)
        for rel in table["relpath"]
    ]
    reasons = pd.Series("", index=table.index)
    reasons[table["genre"].isna()] = "no ('track', 'genre_top') in tracks.csv"
    reasons[~table["split"].isin(SPLITS)] = "no valid ('set', 'split') in tracks.csv"
    known_bad = {f"{k:06d}": v for k, v in known_bad_tracks.items()}
    is_known_bad = table["track_id"].isin(known_bad) & (reasons == "")
    reasons[is_known_bad] = [
        f"known bad in FMA: {known_bad[t]}" for t in table.loc[is_known_bad, "track_id"]
    ]
    missing = ~table["relpath"].isin(collection.files) & (reasons == "")
    reasons[missing] = "file missing (listed in tracks.csv, not on disk)"
    rejected = table[reasons != ""].assign(reason=reasons[reasons != ""], stage="metadata")
    return table[reasons == ""].drop(columns="relpath"), rejected


def _folder_candidates(collection: AudioCollection) -> tuple[pd.DataFrame, pd.DataFrame]:
    listing = collection.tracks.copy()
    listing["path"] = [collection.files[rel].path for rel in listing["relpath"]]
    listing["track_id"] = _folder_track_ids(listing["relpath"])
    listing["split"] = ""
    ext = listing["relpath"].str.lower().str.extract(r"(\.[^./]+)$")[0].fillna("")
    reasons = pd.Series("", index=listing.index)
    reasons[listing["genre"] == ""] = "not inside a genre folder (<root>/<genre>/<file>)"
    not_audio = ~ext.isin(AUDIO_EXTENSIONS) & (reasons == "")
    reasons[not_audio] = f"not an audio file extension (expected one of {AUDIO_EXTENSIONS})"
    rejected = listing[reasons != ""].assign(reason=reasons[reasons != ""], stage="metadata")
    if listing[reasons == ""].empty:
        raise ValueError(
            f"ingestion.folder={collection.root} holds no audio file in a genre folder "
            f"(<root>/<genre>/<file> with one of {AUDIO_EXTENSIONS})."
        )
    return listing[reasons == ""].drop(columns="relpath"), rejected


def _folder_track_ids(relpaths: pd.Series) -> list[str]:
    """Readable, filesystem-safe ids from ``genre/file.ext`` (later stores key files by id).
    Two files can map to one id (``a.mp3`` and ``a.wav``, ``a b.mp3`` and ``a_b.mp3``): the
    second is reported as a duplicate rather than renamed behind the user's back."""
    return [
        re.sub(r"[^A-Za-z0-9._-]+", "_", rel.rsplit(".", 1)[0].replace("/", "__"))
        for rel in relpaths
    ]


def _split_off_duplicates(
    candidates: pd.DataFrame, source: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the first row of each track id (FMA: file order of tracks.csv; folders: sorted
    paths); every further row becomes a rejected row that names the one kept."""
    duplicated = candidates["track_id"].duplicated(keep="first")
    if not duplicated.any():
        return candidates, candidates.iloc[:0].assign(reason="", stage="metadata")
    kept_paths = candidates.loc[~duplicated].set_index("track_id")["path"]
    duplicates = candidates[duplicated].copy()
    if source == "fma":
        duplicates["reason"] = [
            f"duplicate: track id {t} is listed more than once in tracks.csv; the first row is kept"
            for t in duplicates["track_id"]
        ]
    else:
        duplicates["reason"] = [
            f"duplicate: same track id {t} as {kept_paths[t]} (ids are made from the genre "
            "folder and the file name without extension); rename one file to keep both"
            for t in duplicates["track_id"]
        ]
    duplicates["stage"] = "metadata"
    logger.warning(
        "%d duplicate track id(s) reported in the bad-tracks report, e.g. %s",
        len(duplicates),
        duplicates["track_id"].iloc[0],
    )
    return candidates[~duplicated], duplicates


PROBE_COLUMNS = ["duration_s", "sample_rate", "channels", "error"]
# file_mtime_ns: a local file's mtime in ns; for a URL collection the object's version string
# (audio_location.file_stamp, e.g. 'ETag="..."'); the name stays so earlier caches remain valid
FILE_STAMP_COLUMNS = ["file_size", "file_mtime_ns"]


def _probe_one(path: str) -> dict[str, Any]:
    try:
        info = AudioFile(path).info()
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run
        return {"error": f"unreadable: {exc}"}
    return {
        "duration_s": info.duration_s,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "error": "",
    }


def _file_stamp(path: str) -> tuple[int, int | str]:
    """(size, version) identify an unchanged file (:func:`music_genre.infra.location.file_stamp`:
    the mtime in ns for a local file, the object's version string, e.g. its ETag, for a URL);
    size -1 when it cannot be read (version -1, or "" for a URL so that the column keeps one
    type)."""
    try:
        return file_stamp(path)
    except OSError:
        return -1, "" if is_url(path) else -1


def probe_audio_files(
    candidates: pd.DataFrame, previous_probes: pd.DataFrame | None, params: Params
) -> pd.DataFrame:
    """Decode every candidate in parallel to learn its real duration, rate and channels.

    FMA's metadata durations are known to be wrong, so only a full decode is trusted. A file
    that an earlier run decoded without error, and whose size and modification time have not
    changed since, keeps that result (``ingestion.reuse_probes``); failures are always retried,
    since installing a decoder may fix them.
    """
    stamps = pd.DataFrame(
        [_file_stamp(path) for path in candidates["path"]],
        columns=FILE_STAMP_COLUMNS,
        index=candidates.index,
    )
    settings = _settings(params)
    probed = pd.concat([candidates, stamps], axis=1)
    reused = _reusable_probes(probed, previous_probes if settings.reuse_probes else None)
    to_probe = probed.index.difference(reused.index)

    tasks = [(str(index), (path,)) for index, path in probed.loc[to_probe, "path"].items()]
    results = run_tasks(_probe_one, tasks, settings.workers)
    fresh = {
        key: {"error": f"unreadable: {probe.reason}"} if isinstance(probe, TaskFailure) else probe
        for key, probe in tqdm(results, total=len(tasks), desc="probing audio", unit="file")
    }
    fresh_table = pd.DataFrame([fresh[str(index)] for index in to_probe], index=to_probe)
    parts = [part for part in (reused, fresh_table) if not part.empty]
    results = (pd.concat(parts) if parts else pd.DataFrame()).reindex(
        index=probed.index, columns=PROBE_COLUMNS
    )
    logger.info(
        "Probed %d audio files, reused %d unchanged ones from the previous run",
        len(to_probe),
        len(reused),
    )
    return pd.concat([probed, results], axis=1)


def _reusable_probes(probed: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """Earlier successful probes of the files whose size and mtime are unchanged since."""
    if previous is None or not set(PROBE_COLUMNS + FILE_STAMP_COLUMNS) <= set(previous.columns):
        return pd.DataFrame(columns=PROBE_COLUMNS)
    earlier = previous[previous["error"].fillna("") == ""]
    earlier = earlier.drop_duplicates("path").set_index("path")
    keyed = probed[["path", *FILE_STAMP_COLUMNS]].merge(
        earlier[FILE_STAMP_COLUMNS + PROBE_COLUMNS],
        how="left",
        left_on="path",
        right_index=True,
        suffixes=("", "_earlier"),
    )
    same = (keyed["file_size"] >= 0) & keyed[[f"{c}_earlier" for c in FILE_STAMP_COLUMNS]].eq(
        keyed[FILE_STAMP_COLUMNS].to_numpy()
    ).all(axis=1)
    return keyed.loc[same, PROBE_COLUMNS]


def build_track_table(
    probed: pd.DataFrame, metadata_rejects: pd.DataFrame, params: Params
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep tracks that decode and last at least ``min_duration_s``; label genres; split a
    folder collection (stratified, seeded). Returns (tracks, bad_tracks)."""
    settings = _settings(params)
    min_duration = settings.min_duration_s
    probed = probed.copy()
    reasons = probed["error"].fillna("").astype(str)
    too_short = (reasons == "") & (probed["duration_s"] < min_duration)
    reasons[too_short] = [
        f"too short: {d:.2f} s < ingestion.min_duration_s={min_duration:g} s"
        for d in probed.loc[too_short, "duration_s"]
    ]
    bad = probed[reasons != ""].assign(reason=reasons[reasons != ""], stage="probe")
    good = probed[reasons == ""].copy()

    genres_seen = sorted(set(probed["genre"]) | set(metadata_rejects["genre"].dropna()))
    # The run stops before the bad-tracks report is written when the usable rest is too small:
    # such a stop lists these files and their reasons in its message instead.
    unusable = pd.concat([metadata_rejects, _bad_tracks_frame(bad)], ignore_index=True)
    empty = [g for g in genres_seen if g not in set(good["genre"])]
    if empty:
        raise CollectionError(
            f"Genre(s) {empty} have no usable track (all unreadable or shorter than "
            f"ingestion.min_duration_s={min_duration:g} s): fix or remove those files, or lower "
            "ingestion.min_duration_s." + _unusable_lines(unusable)
        )
    if (good["split"] == "").any():
        fractions = settings.split_fractions.model_dump()
        good["split"] = (
            grouped_split(
                good["genre"], good[GROUP_COLUMN], fractions, settings.split_seed, settings.group_by
            )
            if settings.group_by and GROUP_COLUMN in good
            else _stratified_split(good["genre"], settings, unusable)
        )

    labels = genre_labels(good["genre"])
    good["label"] = good["genre"].map(labels).astype("int64")
    good["sample_rate"] = good["sample_rate"].astype("int64")
    good["channels"] = good["channels"].astype("int64")
    tracks = good[TRACK_COLUMNS].sort_values("track_id").reset_index(drop=True)
    bad_tracks = pd.concat([metadata_rejects, _bad_tracks_frame(bad)], ignore_index=True)
    logger.info(
        "Track table: %d tracks in %d genres (%s); %d bad tracks reported",
        len(tracks),
        len(labels),
        ", ".join(f"{s} {n}" for s, n in tracks["split"].value_counts().items()),
        len(bad_tracks),
    )
    return tracks, bad_tracks.sort_values("track_id").reset_index(drop=True)


def _stratified_split(
    genres: pd.Series, settings: IngestionParams, unusable: pd.DataFrame | None = None
) -> np.ndarray:
    """80/10/10 (configurable) per genre, seeded, for collections that have no split. Too few
    usable files for the fractions stop the run with what they need (a :class:`CollectionError`,
    shown without traceback), not with scikit-learn's error."""
    try:
        return _train_test_split_3(genres, settings)
    except ValueError as exc:  # scikit-learn: a side would be empty or miss a genre
        raise CollectionError(_too_few_files_message(genres, settings, unusable)) from exc


def files_per_genre_needed(fractions: dict[str, float]) -> int:
    """The fewest files of a genre that give it at least one track on each side of the split
    (e.g. 10 for 0.8/0.1/0.1: a tenth of 10 files is one validation and one test track)."""
    return max(math.ceil(1 / float(f) - 1e-9) for f in fractions.values())


def _too_few_files_message(
    genres: pd.Series, settings: IngestionParams, unusable: pd.DataFrame | None
) -> str:
    fractions = settings.split_fractions.model_dump()
    shown = ", ".join(f"{k}: {v:g}" for k, v in fractions.items())
    need = files_per_genre_needed(fractions)
    counts = genres.value_counts().sort_index()
    have = ", ".join(f"{genre} {n}" for genre, n in counts.items())
    where = f"ingestion.folder={settings.folder}" if settings.folder else "the collection"
    smallest = int(counts.min())
    if smallest >= 3:
        fix = (
            f"Add files (at least {need} per genre), or change ingestion.split_fractions so that "
            f"validation and test are each at least 1/{smallest} (the smallest genre has "
            f"{smallest} files)."
        )
    else:
        fix = (
            f"Add files: at least {need} per genre for these fractions, or at least 3 per genre "
            "with ingestion.split_fractions changed to validation and test each at least 1/3 "
            f"(the smallest genre has {smallest})."
        )
    return (
        f"Too few usable audio files per genre in {where} for ingestion.split_fractions="
        f"{{{shown}}}: it has {have}; these fractions need at least {need} usable files per "
        f"genre (one validation and one test track each). {fix}" + _unusable_lines(unusable)
    )


def _unusable_lines(unusable: pd.DataFrame | None, limit: int = 5) -> str:
    """The files that could not be used and why, for a message that stops the run before the
    bad-tracks report is written."""
    if unusable is None or unusable.empty:
        return ""
    lines = [f"  - {row.path}: {row.reason}" for row in unusable.head(limit).itertuples()]
    more = f"\n  ... and {len(unusable) - limit} more" if len(unusable) > limit else ""
    return f"\nNot usable ({len(unusable)} files):\n" + "\n".join(lines) + more


def _train_test_split_3(genres: pd.Series, settings: IngestionParams) -> np.ndarray:
    fractions, seed = settings.split_fractions, settings.split_seed
    index = np.arange(len(genres))
    labels = genres.to_numpy()
    holdout = fractions.validation + fractions.test
    stratify = labels if pd.Series(labels).value_counts().min() >= 2 else None
    train_idx, rest_idx = train_test_split(
        index, test_size=holdout, random_state=seed, stratify=stratify
    )
    rest_labels = labels[rest_idx]
    stratify_rest = rest_labels if pd.Series(rest_labels).value_counts().min() >= 2 else None
    val_idx, test_idx = train_test_split(
        rest_idx,
        test_size=fractions.test / holdout,
        random_state=seed,
        stratify=stratify_rest,
    )
    split = np.empty(len(genres), dtype=object)
    split[train_idx], split[val_idx], split[test_idx] = "training", "validation", "test"
    return split


def _bad_tracks_frame(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows.reindex(columns=BAD_TRACK_COLUMNS)
    return out.astype({"track_id": "string", "path": "string", "reason": "string"})
