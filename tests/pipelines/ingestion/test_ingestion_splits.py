"""Folder collections: a published split file is used as is; group_by keeps groups together."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
from kedro.io import DatasetError

from music_genre.datasets import AudioCollectionDataset
from music_genre.pipelines.ingestion.splits import read_tag

from .test_ingestion import PARAMS, _run, _tone

GENRES = ("blues", "jazz", "rock")


def _collection(root: Path, per_genre: int) -> list[str]:
    rels = []
    for genre in GENRES:
        for i in range(per_genre):
            rel = f"{genre}/{genre}.{i:02d}.wav"
            _tone(root / rel, 2.2)
            rels.append(rel)
    return rels


def test_split_file_is_used_as_is_and_reports_unlisted_and_missing_files(tmp_path: Path):
    root = tmp_path / "music"
    rels = _collection(root, 4)
    published = {
        rel: ("training", "validation", "test", "test")[i % 4] for i, rel in enumerate(rels[:-1])
    }  # the last file is not listed
    published["rock/gone.wav"] = "training"  # listed, not on disk
    split_csv = tmp_path / "split.csv"
    pd.DataFrame({"path": list(published), "split": list(published.values())}).to_csv(
        split_csv, index=False
    )
    catalog = _run(
        AudioCollectionDataset(source="folder", folder=str(root), split_file=str(split_csv)),
        {**PARAMS, "split_file": str(split_csv)},
    )
    tracks = catalog.load("tracks")
    got = {
        Path(p).relative_to(root.resolve()).as_posix(): s
        for p, s in zip(tracks["path"], tracks["split"], strict=True)
    }
    assert got == {rel: split for rel, split in published.items() if rel != "rock/gone.wav"}
    bad = catalog.load("bad_tracks")
    reasons = dict(zip(bad["path"].map(lambda p: Path(p).name), bad["reason"], strict=True))
    assert reasons["rock.03.wav"].startswith("present in ingestion.folder but not listed")
    assert reasons["gone.wav"].startswith(f"listed in ingestion.split_file={split_csv} (training)")
    assert set(bad["stage"]) == {"split_file"}


def test_split_file_with_an_unknown_split_or_columns_is_refused(tmp_path: Path):
    root = tmp_path / "music"
    _collection(root, 1)
    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"path": ["blues/blues.00.wav"], "split": ["train"]}).to_csv(wrong, index=False)
    with pytest.raises(Exception, match=r"split must be one of"):
        _run(
            AudioCollectionDataset(source="folder", folder=str(root), split_file=str(wrong)),
            {**PARAMS, "split_file": str(wrong)},
        )
    pd.DataFrame({"file": ["blues/blues.00.wav"]}).to_csv(wrong, index=False)
    with pytest.raises(DatasetError, match=r"ingestion.split_file=.*lacks column"):
        AudioCollectionDataset(source="folder", folder=str(root), split_file=str(wrong)).load()
    with pytest.raises(DatasetError, match=r"ingestion.split_file=.*not found"):
        AudioCollectionDataset(
            source="folder", folder=str(root), split_file=str(tmp_path / "absent.csv")
        ).load()


def _artists(rels: list[str]) -> dict[str, str]:
    """15 artists of two tracks each, every one of them in two genres: artist k plays track k
    and track k + 15 of the genre-ordered list (blues with jazz or rock, or jazz with rock),
    so that a genre-stratified split that ignored the artists would separate them."""
    artists = {rel: f"artist{i % 15:02d}" for i, rel in enumerate(rels)}
    genres: dict[str, set[str]] = {}
    for rel, artist in artists.items():
        genres.setdefault(artist, set()).add(rel.split("/")[0])
    assert len(genres) == 15 and all(len(g) == 2 for g in genres.values())
    return artists


def _assert_grouped(tracks: pd.DataFrame, root: Path, artists: dict[str, str]) -> None:
    rel = tracks["path"].map(lambda p: Path(p).relative_to(root.resolve()).as_posix())
    assert sorted(rel) == sorted(artists)
    per_artist = tracks.assign(artist=rel.map(artists)).groupby("artist")["split"].nunique()
    assert (per_artist == 1).all(), per_artist[per_artist > 1]
    assert set(tracks["split"]) == {"training", "validation", "test"}
    assert (tracks["split"] == "training").sum() >= 18


def test_group_by_artist_keeps_every_artist_on_one_side_of_the_split(tmp_path: Path):
    root = tmp_path / "music"
    artists = _artists(_collection(root, 10))
    metadata = tmp_path / "artists.csv"
    pd.DataFrame({"path": list(artists), "artist": list(artists.values())}).to_csv(
        metadata, index=False
    )
    params = {**PARAMS, "group_by": "artist", "metadata_file": str(metadata)}
    collection = AudioCollectionDataset(
        source="folder", folder=str(root), metadata_file=str(metadata)
    )
    tracks = _run(collection, params).load("tracks")
    _assert_grouped(tracks, root, artists)
    again = _run(collection, params).load("tracks")
    assert again["split"].tolist() == tracks["split"].tolist()  # seeded


def test_group_by_a_tag_reads_it_from_the_files_through_the_pipeline(tmp_path: Path):
    root = tmp_path / "music"
    artists = _artists(_collection(root, 10))
    for rel, artist in artists.items():  # the same tones, now with an artist tag
        data, rate = sf.read(root / rel)
        with sf.SoundFile(root / rel, "w", samplerate=rate, channels=1) as handle:
            handle.artist = artist
            handle.write(data)
    assert read_tag(str(root / "rock/rock.09.wav"), "artist") == "artist14"
    assert read_tag(str(root / "rock/rock.09.wav"), "album") == ""
    assert read_tag(str(tmp_path / "absent.wav"), "artist") == ""
    tracks = _run(
        AudioCollectionDataset(source="folder", folder=str(root)),
        {**PARAMS, "group_by": "artist"},
    ).load("tracks")
    _assert_grouped(tracks, root, artists)


def test_too_few_groups_for_the_split_is_a_clear_error(tmp_path: Path):
    root = tmp_path / "music"
    rels = _collection(root, 2)
    metadata = tmp_path / "artists.csv"
    pd.DataFrame({"path": rels, "artist": ["a", "b"] * 3}).to_csv(metadata, index=False)
    with pytest.raises(Exception, match=r"2 groups cannot be split"):
        _run(
            AudioCollectionDataset(source="folder", folder=str(root), metadata_file=str(metadata)),
            {**PARAMS, "group_by": "artist", "metadata_file": str(metadata)},
        )
