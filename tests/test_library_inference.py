"""Batch prediction over a music library: the inference pipeline's functions, its nodes and
dataset, and `genre-predict FOLDER --output FILE` (music_genre.pipelines.inference)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from music_genre.audio.spectrograms import STUDY_SETTINGS, spectrogram_settings
from music_genre.commands import predict as predict_cli
from music_genre.datasets import LibraryPredictionsDataset
from music_genre.pipelines.inference.library import (
    LibraryError,
    list_library,
    merge_chunk,
    read_table,
    run_library,
)
from music_genre.pipelines.inference.nodes import predict_music_library
from music_genre.serving import CnnPredictor, predict_file
from tests.helpers.audio import write_tone
from tests.helpers.predictors import tiny_cnn_predictor

GENRES = ["Folk", "Pop", "Rock"]
SETTINGS = spectrogram_settings(
    {**STUDY_SETTINGS, "pad_mode": "repeat", "storage_dtype": "float16"}
)


@pytest.fixture
def library(tmp_path) -> Path:
    """Nested folders, every extension in both cases, a broken, an empty, a too-short file,
    a FIFO and a file that is not audio by its name."""
    root = tmp_path / "music"
    write_tone(root / "a.wav", 8.0, freq=220, tremolo_hz=0.5)
    write_tone(root / "rock" / "b.FLAC", 6.0, freq=440, tremolo_hz=0.5, fmt="FLAC")
    write_tone(root / "rock" / "deep" / "c.ogg", 5.0, freq=330, tremolo_hz=0.5, fmt="OGG")
    write_tone(root / "pop" / "d.mp3", 7.0, freq=550, tremolo_hz=0.5, fmt="MP3")
    (root / "pop" / "broken.mp3").write_text("not audio at all")
    (root / "pop" / "empty.wav").write_bytes(b"")
    write_tone(root / "short.au", 1.0, freq=660, tremolo_hz=0.5, fmt="AU")
    (root / "notes.txt").write_text("ignored")
    os.mkfifo(root / "pipe.mp3")
    return root


@pytest.fixture(scope="module")
def predictor() -> CnnPredictor:
    return tiny_cnn_predictor(GENRES, SETTINGS, seed=0)


def _run(predictor, folder, output, **options):
    options = {"workers": 1, "progress": False, "chunk_size": 3, **options}
    return run_library(predictor, predictor.label, str(folder), str(output), **options)


def test_one_row_per_file_with_the_reason_of_each_bad_one(predictor, library, tmp_path):
    table, summary = _run(predictor, library, tmp_path / "out.parquet")
    names = [os.path.relpath(p, library) for p in table["path"]]
    assert names == sorted(
        [
            "a.wav",
            "pipe.mp3",
            "pop/broken.mp3",
            "pop/d.mp3",
            "pop/empty.wav",
            "rock/b.FLAC",
            "rock/deep/c.ogg",
            "short.au",
        ]
    )
    errors = dict(zip(names, table["error"], strict=True))
    assert "cannot decode" in errors["pop/broken.mp3"]
    assert "empty file" in errors["pop/empty.wav"]
    assert "too short" in errors["short.au"]
    assert "not a regular file (a FIFO)" in errors["pipe.mp3"]
    good = table[table["error"] == ""]
    assert len(good) == 4 and set(good["genre"]) <= set(GENRES)
    np.testing.assert_allclose(good[GENRES].sum(axis=1), 1.0, atol=1e-5)
    assert table["model"].str.startswith("cnn sha256:").all()
    assert summary.predicted == 7  # the FIFO is a row without decoding
    # the same numbers as genre-predict's per-file prediction
    for path, row in good.set_index("path").iterrows():
        expected = predict_file(predictor, path)
        np.testing.assert_allclose(
            [row[g] for g in GENRES], [expected.probabilities[g] for g in GENRES], atol=1e-5
        )


def test_resume_predicts_only_new_or_changed_files(predictor, library, tmp_path):
    output = tmp_path / "out.csv"
    first, _ = _run(predictor, library, output)
    again, summary = _run(predictor, library, output)
    assert summary.predicted == 0 and summary.reused == len(first)
    pd.testing.assert_frame_equal(again, first)
    changed = library / "rock" / "b.FLAC"
    stamp = changed.stat().st_mtime_ns + 5_000_000_000
    os.utime(changed, ns=(stamp, stamp))
    (library / "a.wav").unlink()
    _, summary = _run(predictor, library, output)
    table = pd.read_csv(output)
    assert summary.predicted == 1
    assert str(changed) in set(table["path"]) and str(library / "a.wav") not in set(table["path"])


def test_an_interrupted_run_keeps_its_finished_chunks(predictor, library, tmp_path):
    """Stopped after its first chunk (the consumer stops, as at a kill): the table holds that
    chunk, and the next run predicts only the rest."""
    from music_genre.pipelines.inference.library import predict_library

    output = str(tmp_path / "out.parquet")
    chunks = predict_library(
        predictor, "cnn", str(library), None, workers=1, progress=False, chunk_size=3
    )
    table = None
    from music_genre.pipelines.inference.library import write_table

    for count, chunk in enumerate(chunks):
        table = merge_chunk(table, chunk)
        write_table(output, table)
        if count == 1:  # the kept rows, then one chunk
            chunks.close()
            break
    assert len(pd.read_parquet(output)) == 1 + 3  # the FIFO's row and one chunk
    _, summary = _run(predictor, library, output)
    assert summary.predicted == 4


def test_one_or_two_workers_give_identical_tables(predictor, library, tmp_path):
    one, _ = _run(predictor, library, tmp_path / "one.parquet", workers=1)
    two, _ = _run(predictor, library, tmp_path / "two.parquet", workers=2)
    pd.testing.assert_frame_equal(one, two, check_exact=True)


def test_a_missing_folder_names_the_setting_and_the_fix(tmp_path):
    with pytest.raises(LibraryError, match=r"inference.folder='.*nope': no such folder.*--params"):
        list_library(str(tmp_path / "nope"))
    with pytest.raises(LibraryError, match="inference.folder is not set"):
        list_library(None)


def test_urls_are_listed_with_their_version(library):
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.pipe("/lib/x/a.WAV", (library / "a.wav").read_bytes())
    memory.pipe("/lib/readme.md", b"no")
    try:
        files = list_library("memory://lib")
    finally:
        memory.rm("/lib", recursive=True)
    assert [f.path for f in files] == ["memory://lib/x/a.WAV"]
    assert files[0].size == (library / "a.wav").stat().st_size and not files[0].error


def test_the_node_and_the_cli_write_the_same_rows(predictor, library, tmp_path, monkeypatch):
    """The pipeline's node into its catalog dataset, and genre-predict FOLDER --output."""
    params = {
        "folder": str(library),
        "model": "cnn",
        "runtime": "auto",
        "run_id": None,
        "min_seconds": 3.0,
        "max_windows": 10,
        "workers": 1,
        "chunk_size": 3,
        "progress": False,
    }
    monkeypatch.setattr(
        "music_genre.pipelines.inference.library.build_predictor",
        lambda kind, load, params, exported: predictor,
    )
    dataset = LibraryPredictionsDataset(filepath=str(tmp_path / "pipeline.parquet"))
    for chunk in predict_music_library(None, dataset.load(), params, {}, {}):
        dataset.save(chunk)
    from_pipeline = dataset.load()

    class Context:
        catalog = None
        params: dict = {}

    monkeypatch.setattr(predict_cli, "_kedro_context", lambda project, env: Context())
    Context.catalog = type("Catalog", (), {"load": staticmethod(lambda name: None)})()
    output = tmp_path / "cli.csv"
    code = predict_cli.main(
        [
            str(library),
            "--output",
            str(output),
            "--model",
            "cnn",
            "--workers",
            "1",
            "--chunk-size",
            "3",
            "--no-progress",
        ]
    )
    assert code == 0
    from_cli = read_table(str(output))  # the CSV read back as the command reads it
    pd.testing.assert_frame_equal(
        from_cli.drop(columns=["genre"]),
        from_pipeline.drop(columns=["genre"]),
        check_dtype=False,
    )
    assert from_cli["genre"].fillna("").tolist() == from_pipeline["genre"].fillna("").tolist()
