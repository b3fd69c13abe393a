"""Ingestion: node units, the pipeline on an in-memory catalog for both sources, and errors."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import ParquetDataset

from music_genre.datasets import AudioCollectionDataset, OptionalParquetDataset
from music_genre.pipelines.ingestion import create_pipeline
from music_genre.pipelines.ingestion.nodes import (
    build_track_table,
    fma_track_path,
    probe_audio_files,
)
from tests.helpers.audio import write_tone

_tone = partial(write_tone, rate=16000)  # this file's tracks: a 330 Hz tone at 16 kHz

# params:ingestion as Kedro passes it: complete, since the nodes validate it (IngestionParams)
PARAMS = {
    "source": "fma",
    "fma_root": "data/01_raw/fma",
    "subset": "small",
    "min_duration_s": 2.0,
    "workers": 1,
    "split_fractions": {"training": 0.8, "validation": 0.1, "test": 0.1},
    "split_seed": 42,
    "known_bad_tracks": {},
    "reuse_probes": True,
}


def _run(
    collection: AudioCollectionDataset, params: dict, probe_file: Path | None = None
) -> DataCatalog:
    """Run ingestion; with ``probe_file`` the probes are stored and reused as in the real
    catalog (one parquet file, written as ``probed_tracks`` and read back as the cache)."""
    stored = probe_file is not None
    catalog = DataCatalog(
        {
            "raw_audio_collection": collection,
            "params:ingestion": MemoryDataset(params),
            "previous_probed_tracks": (
                OptionalParquetDataset(filepath=str(probe_file)) if stored else MemoryDataset(None)
            ),
            "probed_tracks": (
                ParquetDataset(filepath=str(probe_file)) if stored else MemoryDataset()
            ),
            "tracks": MemoryDataset(),
            "bad_tracks": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


@pytest.fixture
def genre_folder(tmp_path: Path) -> Path:
    """10 good clips in each of 3 genres, plus one short clip, one non-audio file, one fake mp3."""
    root = tmp_path / "collection"
    for genre in ("blues", "jazz", "rock"):
        for i in range(10):
            _tone(root / genre / f"{genre}.{i:05d}.wav", 2.5, channels=1 + i % 2)
    _tone(root / "jazz" / "short.flac", 0.5)
    (root / "rock" / "notes.txt").write_text("liner notes")
    (root / "blues" / "fake.mp3").write_bytes(b"<html>not audio</html>")
    return root


def test_fma_track_path_follows_fma_layout():
    assert fma_track_path(2) == "000/000002.mp3"
    assert fma_track_path(108925) == "108/108925.mp3"


@pytest.mark.slow
def test_folder_source_builds_table_and_reports_every_bad_file(genre_folder: Path):
    catalog = _run(AudioCollectionDataset(source="folder", folder=str(genre_folder)), PARAMS)
    tracks = catalog.load("tracks")
    bad = catalog.load("bad_tracks")

    assert len(tracks) == 30
    assert sorted(tracks["genre"].unique()) == ["blues", "jazz", "rock"]
    assert dict(zip(tracks["genre"], tracks["label"], strict=True)) == {
        "blues": 0,
        "jazz": 1,
        "rock": 2,
    }
    # stratified 80/10/10 per genre
    counts = tracks.groupby(["genre", "split"]).size().unstack()
    assert (counts["training"] == 8).all() and (counts["validation"] == 1).all()
    assert (counts["test"] == 1).all()
    assert set(tracks["channels"]) == {1, 2}
    assert (tracks["sample_rate"] == 16000).all()
    assert tracks["duration_s"].between(2.49, 2.51).all()
    assert tracks["track_id"].is_unique

    reasons = dict(zip(bad["path"].map(lambda p: Path(p).name), bad["reason"], strict=True))
    assert set(reasons) == {"short.flac", "notes.txt", "fake.mp3"}
    assert reasons["short.flac"].startswith("too short")
    assert "not an audio file extension" in reasons["notes.txt"]
    assert "cannot decode" in reasons["fake.mp3"]


def test_folder_split_is_seeded(genre_folder: Path):
    first = _run(AudioCollectionDataset(source="folder", folder=str(genre_folder)), PARAMS)
    again = _run(AudioCollectionDataset(source="folder", folder=str(genre_folder)), PARAMS)
    other = _run(
        AudioCollectionDataset(source="folder", folder=str(genre_folder)),
        {**PARAMS, "split_seed": 7},
    )
    split = first.load("tracks").set_index("track_id")["split"]
    assert split.equals(again.load("tracks").set_index("track_id")["split"])
    assert not split.equals(other.load("tracks").set_index("track_id")["split"])


def test_short_clips_are_kept_when_min_duration_is_lowered(genre_folder: Path):
    catalog = _run(
        AudioCollectionDataset(source="folder", folder=str(genre_folder)),
        {**PARAMS, "min_duration_s": 0.25},
    )
    assert "jazz__short" in set(catalog.load("tracks")["track_id"])


def test_genre_without_usable_tracks_stops_with_a_clear_message(tmp_path: Path):
    root = tmp_path / "c"
    for i in range(3):
        _tone(root / "rock" / f"{i}.wav", 2.5)
    _tone(root / "jazz" / "only_short.wav", 0.5)
    with pytest.raises(Exception, match=r"jazz.*min_duration_s"):
        _run(AudioCollectionDataset(source="folder", folder=str(root)), PARAMS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "fma", "fma_root": "/nonexistent/fma"}, r"tracks\.csv.*ingestion\.fma_root"),
        ({"source": "fma", "subset": "huge"}, r"ingestion\.subset"),
        ({"source": "folder", "folder": None}, r"ingestion\.folder is not set"),
        ({"source": "folder", "folder": "/nonexistent/dir"}, r"folder not found"),
        ({"source": "spotify"}, r"ingestion\.source"),
    ],
)
def test_configuration_errors_name_the_path_or_parameter(kwargs, message):
    with pytest.raises(DatasetError, match=message):
        AudioCollectionDataset(**kwargs).load()


def test_empty_folder_is_a_configuration_error(tmp_path: Path):
    with pytest.raises(DatasetError, match="is empty"):
        AudioCollectionDataset(source="folder", folder=str(tmp_path)).load()


@pytest.mark.parametrize("value", [-3, "5", None, float("nan")])
def test_a_negative_or_non_numeric_min_duration_is_refused_before_the_run(value):
    from music_genre.config import ParameterError, validate_parameters

    with pytest.raises(ParameterError, match=r"ingestion\.min_duration_s"):
        validate_parameters({"ingestion": {**PARAMS, "min_duration_s": value}})


def test_build_track_table_reports_decode_errors_and_short_clips():
    probed = pd.DataFrame(
        {
            "track_id": ["000001", "000002", "000003"],
            "path": ["a", "b", "c"],
            "genre": ["Rock", "Rock", "Rock"],
            "split": ["training", "test", "validation"],
            "duration_s": [30.0, 3.0, np.nan],
            "sample_rate": [44100, 44100, np.nan],
            "channels": [2, 2, np.nan],
            "error": ["", "", "unreadable: empty file (0 bytes)"],
        }
    )
    empty_rejects = pd.DataFrame(columns=["track_id", "path", "genre", "split", "stage", "reason"])
    tracks, bad = build_track_table(probed, empty_rejects, {**PARAMS, "min_duration_s": 29.7})
    assert list(tracks["track_id"]) == ["000001"]
    assert list(bad["track_id"]) == ["000002", "000003"]
    assert bad["reason"].iloc[0].startswith("too short: 3.00 s")
    assert "empty file" in bad["reason"].iloc[1]


def _candidates(root: Path) -> pd.DataFrame:
    paths = sorted(str(p) for p in root.rglob("*.wav"))
    return pd.DataFrame(
        {"track_id": [Path(p).stem for p in paths], "path": paths, "genre": "rock", "split": ""}
    )


def test_unchanged_files_reuse_the_previous_probe_and_changed_ones_are_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import music_genre.pipelines.ingestion.nodes as ingestion_nodes

    for i in range(4):
        _tone(tmp_path / "rock" / f"{i}.wav", 2.5)
    candidates = _candidates(tmp_path)
    first = probe_audio_files(candidates, None, PARAMS)
    assert (first["error"] == "").all() and first["duration_s"].between(2.49, 2.51).all()

    # the cache is the saved parquet file, read back through the catalog's dataset type
    cache = OptionalParquetDataset(filepath=str(tmp_path / "probed.parquet"))
    assert cache.load() is None
    cache.save(first)

    decoded: list[str] = []
    real_run_tasks = ingestion_nodes.run_tasks

    def recording(function, tasks, *args, **kwargs):
        decoded.extend(path for _, (path,) in tasks)
        return real_run_tasks(function, tasks, *args, **kwargs)

    monkeypatch.setattr(ingestion_nodes, "run_tasks", recording)
    _tone(tmp_path / "rock" / "1.wav", 4.0)  # rewritten: new size
    again = probe_audio_files(candidates, cache.load(), PARAMS)
    assert decoded == [str(tmp_path / "rock" / "1.wav")]
    assert again.set_index("track_id").loc["1", "duration_s"] == pytest.approx(4.0, abs=0.01)
    pd.testing.assert_frame_equal(
        again.drop(index=1).reset_index(drop=True), first.drop(index=1).reset_index(drop=True)
    )

    decoded.clear()
    probe_audio_files(candidates, cache.load(), {**PARAMS, "reuse_probes": False})
    assert len(decoded) == 4


def test_failed_probes_are_retried_and_a_corrupt_cache_is_ignored(tmp_path: Path):
    _tone(tmp_path / "rock" / "0.wav", 2.5)
    candidates = _candidates(tmp_path)
    previous = probe_audio_files(candidates, None, PARAMS).assign(
        error="unreadable: earlier decoder missing", duration_s=np.nan
    )
    retried = probe_audio_files(candidates, previous, PARAMS)
    assert retried.loc[0, "error"] == "" and retried.loc[0, "duration_s"] > 2.4

    corrupt = tmp_path / "probed.parquet"
    corrupt.write_bytes(b"PAR1 interrupted write")
    assert OptionalParquetDataset(filepath=str(corrupt)).load() is None


def test_pipeline_rerun_reuses_its_stored_probes_and_gives_the_same_tables(
    genre_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    collection = AudioCollectionDataset(source="folder", folder=str(genre_folder))
    probe_file = tmp_path / "probed_tracks.parquet"
    first = _run(collection, PARAMS, probe_file)
    caplog.clear()
    with caplog.at_level("INFO", logger="music_genre.pipelines.ingestion.nodes"):
        again = _run(collection, PARAMS, probe_file)
    # 31 candidates: 30 good clips and the short one are reused; the fake mp3 is retried
    assert "Probed 1 audio files, reused 31 unchanged ones" in caplog.text
    pd.testing.assert_frame_equal(first.load("tracks"), again.load("tracks"))
    pd.testing.assert_frame_equal(first.load("bad_tracks"), again.load("bad_tracks"))


# -- duplicates are reported, not passed on ------------------------------------------------
def _write_fma(root: Path, rows: list[tuple[int, str, str]]) -> None:
    """A minimal FMA tree: tracks.csv (two header rows) and one wav-in-mp3-name file per id."""
    metadata = root / "fma_metadata"
    metadata.mkdir(parents=True)
    columns = pd.MultiIndex.from_tuples(
        [("set", "subset"), ("set", "split"), ("track", "genre_top")]
    )
    table = pd.DataFrame(
        [("small", split, genre) for _, split, genre in rows],
        index=pd.Index([track_id for track_id, _, _ in rows], name="track_id"),
        columns=columns,
    )
    table.to_csv(metadata / "tracks.csv")
    for track_id, _, _ in rows:
        path = root / "fma_small" / fma_track_path(track_id)
        _tone(path.with_suffix(".wav"), 2.5)
        path.with_suffix(".wav").rename(path)


def test_a_track_id_listed_twice_in_tracks_csv_is_kept_once_and_reported(tmp_path: Path):
    rows = [
        (2, "training", "Rock"),
        (3, "training", "Folk"),
        (5, "validation", "Rock"),
        (7, "test", "Folk"),
        (3, "test", "Folk"),
    ]
    _write_fma(tmp_path / "fma", rows)
    catalog = _run(AudioCollectionDataset(source="fma", fma_root=str(tmp_path / "fma")), PARAMS)
    tracks, bad = catalog.load("tracks"), catalog.load("bad_tracks")
    assert sorted(tracks["track_id"]) == ["000002", "000003", "000005", "000007"]
    assert tracks.set_index("track_id").loc["000003", "split"] == "training"  # the first row
    duplicates = bad[bad["reason"].str.startswith("duplicate")]
    assert duplicates["track_id"].tolist() == ["000003"]
    assert "listed more than once in tracks.csv" in duplicates["reason"].iloc[0]


def test_two_files_with_the_same_track_id_in_a_folder_are_kept_once_and_reported(
    genre_folder: Path,
):
    _tone(genre_folder / "rock" / "rock.00003.flac", 2.5)  # same id as rock/rock.00003.wav
    catalog = _run(AudioCollectionDataset(source="folder", folder=str(genre_folder)), PARAMS)
    tracks, bad = catalog.load("tracks"), catalog.load("bad_tracks")
    assert len(tracks) == 30 and tracks["track_id"].is_unique
    kept = tracks.set_index("track_id").loc["rock__rock.00003", "path"]
    assert kept.endswith("rock.00003.flac")  # sorted paths: .flac before .wav
    duplicate = bad[bad["reason"].str.startswith("duplicate")]
    assert duplicate["path"].map(lambda p: Path(p).name).tolist() == ["rock.00003.wav"]
    assert "rock.00003.flac" in duplicate["reason"].iloc[0]
    assert "rename one file" in duplicate["reason"].iloc[0]


# -- a crashing worker costs one file --------------------------------------------------------
@pytest.mark.slow
def test_a_file_that_crashes_its_worker_is_reported_and_the_rest_is_probed(
    genre_folder: Path, monkeypatch: pytest.MonkeyPatch
):
    from music_genre.infra.parallel import CRASH_KEYS_ENV

    candidates = _candidates(genre_folder)
    crash_index = int(candidates.index[candidates["path"].str.endswith("jazz.00004.wav")][0])
    monkeypatch.setenv(CRASH_KEYS_ENV, str(crash_index))
    probed = probe_audio_files(candidates, None, {**PARAMS, "workers": 2})
    errors = probed.set_index("path")["error"]
    crashed = errors[errors.str.contains("worker crashed")]
    assert [Path(p).name for p in crashed.index] == ["jazz.00004.wav"]
    assert crashed.iloc[0] == "unreadable: worker crashed (signal SIGSEGV)"
    good = probed[probed["path"].str.contains(r"\.\d{5}\.wav$") & (probed["error"] == "")]
    assert len(good) == 29 and good["duration_s"].between(2.49, 2.51).all()


def _small_folder(root: Path) -> None:
    """Two genres of two readable clips each, and two unreadable files."""
    for genre, names in (("rock", "ac"), ("jazz", "bd")):
        for name in names:
            _tone(root / genre / f"{name}.wav", 2.5)
    (root / "rock" / "broken.mp3").write_bytes(b"<html>not audio</html>")
    (root / "jazz" / "notes.txt").write_text("liner notes")


def test_too_few_files_per_genre_for_the_split_fractions_stop_with_what_to_change(
    tmp_path: Path,
):
    from music_genre.errors import SetupError

    root = tmp_path / "c"
    _small_folder(root)
    with pytest.raises(SetupError) as info:
        _run(
            AudioCollectionDataset(source="folder", folder=str(root)),
            {**PARAMS, "folder": str(root)},
        )
    lines = str(info.value).splitlines()
    assert lines[:4] == [
        f"Too few usable audio files per genre in ingestion.folder={root} for "
        "ingestion.split_fractions={training: 0.8, validation: 0.1, test: 0.1}: it has jazz 2, "
        "rock 2; these fractions need at least 10 usable files per genre (one validation and "
        "one test track each). Add files: at least 10 per genre for these fractions, or at "
        "least 3 per genre with ingestion.split_fractions changed to validation and test each "
        "at least 1/3 (the smallest genre has 2).",
        "Not usable (2 files):",
        f"  - {root}/jazz/notes.txt: not an audio file extension (expected one of "
        "('.mp3', '.wav', '.flac', '.ogg', '.au'))",
        f"  - {root}/rock/broken.mp3: unreadable: {root}/rock/broken.mp3: cannot decode as audio: "
        + lines[3].split("cannot decode as audio: ", 1)[-1],
    ]
    assert len(lines) == 4
    # three genres of three: other split fractions would do, and the message says which
    for genre in ("rock", "jazz", "pop", "pop", "pop"):
        _tone(root / genre / f"{len(list((root / genre).glob('*.wav')))}.wav", 2.5)
    with pytest.raises(SetupError) as info:
        _run(AudioCollectionDataset(source="folder", folder=str(root)), PARAMS)
    assert (
        "Add files (at least 10 per genre), or change ingestion.split_fractions so that "
        "validation and test are each at least 1/3 (the smallest genre has 3 files)."
    ) in str(info.value)
    params = {**PARAMS, "split_fractions": {"training": 0.34, "validation": 0.33, "test": 0.33}}
    tracks = _run(AudioCollectionDataset(source="folder", folder=str(root)), params).load("tracks")
    assert (tracks.groupby(["genre", "split"]).size() == 1).all() and len(tracks) == 9


@pytest.mark.timeout(120)  # a FIFO opened by mistake would block forever
def test_fifos_and_device_symlinks_are_reported_under_their_own_path_unopened(tmp_path: Path):
    """A FIFO (opening it would block forever) and symlinks to /dev/zero (never ends) and
    /dev/urandom are reported under the collection's path as not regular files; a symlink to
    a real audio file is an ordinary track."""
    import os

    root = tmp_path / "c"
    for genre in ("rock", "jazz"):
        for i in range(10):
            _tone(root / genre / f"{i}.wav", 2.5)
    outside = tmp_path / "elsewhere" / "real.wav"
    _tone(outside, 2.5)
    (root / "rock" / "linked.wav").symlink_to(outside)
    os.mkfifo(root / "rock" / "pipe.wav")
    (root / "jazz" / "zero.mp3").symlink_to("/dev/zero")
    (root / "jazz" / "noise.wav").symlink_to("/dev/urandom")

    catalog = _run(AudioCollectionDataset(source="folder", folder=str(root)), PARAMS)
    tracks, bad = catalog.load("tracks"), catalog.load("bad_tracks")
    reasons = dict(zip(bad["path"], bad["reason"], strict=True))
    pipe, zero, noise = (
        root / "rock" / "pipe.wav",
        root / "jazz" / "zero.mp3",
        root / "jazz" / "noise.wav",
    )
    assert reasons == {
        str(pipe): f"unreadable: {pipe}: not a regular file (a named pipe (FIFO))",
        str(zero): f"unreadable: {zero}: not a regular file (a character device, via a "
        "symlink to /dev/zero)",
        str(noise): f"unreadable: {noise}: not a regular file (a character device, via a "
        "symlink to /dev/urandom)",
    }
    assert set(bad["stage"]) == {"probe"}
    linked = tracks.set_index("track_id").loc["rock__linked"]
    assert linked["path"] == str(root / "rock" / "linked.wav")  # its own path, not the target
    assert linked["duration_s"] == pytest.approx(2.5, abs=0.01)
    assert len(tracks) == 21


def test_kedro_run_on_too_small_a_folder_prints_the_message_without_a_traceback(
    tmp_path: Path,
):
    """The real command line: `kedro run --pipelines=ingestion --params ...` on a folder with
    two files per genre ends with the message alone (SetupErrorHook), exit status 1."""
    import os
    import shutil
    import subprocess
    import sys

    project_root = Path(__file__).resolve().parents[3]
    project = tmp_path / "clone"
    project.mkdir()
    shutil.copy(project_root / "pyproject.toml", project)
    shutil.copytree(project_root / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    shutil.copytree(
        project_root / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__")
    )
    root = tmp_path / "music"
    _small_folder(root)
    result = subprocess.run(  # killed on timeout or on any error while waiting
        [
            sys.executable,
            "-m",
            "kedro",
            "run",
            "--pipelines=ingestion",
            "--params",
            f"ingestion.source=folder,ingestion.folder={root},ingestion.workers=1,"
            "ingestion.min_duration_s=1",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "KEDRO_DISABLE_TELEMETRY": "1",
            "PYTHONPATH": os.pathsep.join([str(project / "src"), os.environ.get("PYTHONPATH", "")]),
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output and "sklearn" not in output, output[-3000:]
    assert (
        f"Error: Too few usable audio files per genre in ingestion.folder={root} for "
        "ingestion.split_fractions={training: 0.8, validation: 0.1, test: 0.1}" in output
    )
    assert "Add files: at least 10 per genre" in output
