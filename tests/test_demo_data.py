"""Tests of the synthetic FMA-style demo dataset (music_genre.demo).

Tiny sizes (3 tracks per genre, 3-s clips) keep the whole file well under 30 s. Features are
computed with numpy only: librosa's feature functions would first compile numba code (~18 s).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from music_genre import demo as dd
from music_genre.demo import fma_layout

pytestmark = pytest.mark.slow  # generates two demo datasets (MP3 encoding of every track)

TPG, DUR, SEED = 3, 3.0, 0
EIGHT = {
    "Electronic",
    "Experimental",
    "Folk",
    "Hip-Hop",
    "Instrumental",
    "International",
    "Pop",
    "Rock",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_w2")
    summary = dd.generate_demo_dataset(
        root, tracks_per_genre=TPG, duration_s=DUR, seed=SEED, workers=2
    )
    return root, summary


@pytest.fixture(scope="module")
def demo_serial(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_w1")
    summary = dd.generate_demo_dataset(
        root, tracks_per_genre=TPG, duration_s=DUR, seed=SEED, workers=1
    )
    return root, summary


@pytest.fixture(scope="module")
def tracks(demo):
    root, _ = demo
    return pd.read_csv(root / "fma_metadata" / "tracks.csv", index_col=0, header=[0, 1])


def _mp3(root: Path, tid: int) -> Path:
    return root / "fma_small" / f"{tid:06d}"[:3] / f"{tid:06d}.mp3"


# ------------------------------------------------------------------------------ tracks.csv
def test_tracks_csv_has_fma_structure(tracks):
    assert isinstance(tracks.columns, pd.MultiIndex)
    assert tracks.index.name == "track_id"
    assert list(tracks.columns.get_level_values(0).unique()) == ["album", "artist", "set", "track"]
    for group, cols in dd.TRACK_COLUMNS.items():
        assert list(tracks[group].columns) == cols
    # spot-check the spec's column names literally (not only via the module's own constant)
    for col in [
        ("set", "split"),
        ("set", "subset"),
        ("track", "genre_top"),
        ("track", "genres_all"),
        ("track", "duration"),
        ("artist", "id"),
        ("album", "type"),
        ("artist", "wikipedia_page"),
        ("track", "language_code"),
        ("track", "bit_rate"),
    ]:
        assert col in tracks.columns
    assert len(tracks.columns) == 13 + 17 + 2 + 20
    assert tracks.index.is_unique and (tracks.index >= 900_000).all()
    assert pd.api.types.is_integer_dtype(tracks[("track", "duration")])
    assert pd.api.types.is_integer_dtype(tracks[("artist", "id")])


def test_list_columns_are_python_literals(tracks):
    for col in [
        ("track", "genres"),
        ("track", "genres_all"),
        ("track", "tags"),
        ("album", "tags"),
        ("artist", "tags"),
    ]:
        for cell in tracks[col]:
            assert isinstance(ast.literal_eval(cell), list), (col, cell)
    for genres, genres_all in zip(
        tracks[("track", "genres")], tracks[("track", "genres_all")], strict=True
    ):
        g, ga = ast.literal_eval(genres), ast.literal_eval(genres_all)
        assert g and set(g) <= set(ga)
        assert all(isinstance(x, int) for x in ga)


def test_subsets_splits_and_genres(tracks, demo):
    _, summary = demo
    subset, split = tracks[("set", "subset")], tracks[("set", "split")]
    genre = tracks[("track", "genre_top")]
    assert set(subset) == {"small", "medium", "large"}
    assert set(split) == {"training", "validation", "test"}
    small = tracks[subset == "small"]
    n_bad = len(dd.DEFECTS)
    assert len(small) == 8 * TPG + n_bad
    assert (subset == "medium").sum() == dd.N_MEDIUM_ROWS and (
        subset == "large"
    ).sum() == dd.N_LARGE_ROWS
    assert set(small[("track", "genre_top")]) == EIGHT
    counts = small[("track", "genre_top")].value_counts()
    assert counts.min() >= TPG and counts.sum() == 8 * TPG + n_bad
    # each genre split 1/1/1 at 3 per genre (80/10/10 rounded, at least one each)
    good = small.drop(index=list(summary["bad_files"]))
    per = good.groupby([("track", "genre_top"), ("set", "split")]).size().unstack()
    assert (
        (per["training"] == 1).all() and (per["validation"] == 1).all() and (per["test"] == 1).all()
    )
    # genre_top agrees with genres_all's top-level ids; large rows may lack a genre_top (like FMA)
    for g, ga in zip(
        genre[genre.notna()], tracks.loc[genre.notna(), ("track", "genres_all")], strict=True
    ):
        assert dd.GENRES[g] in ast.literal_eval(ga)
    assert genre[subset == "small"].notna().all()
    assert (tracks.loc[subset == "small", ("track", "duration")] == round(DUR)).all()


def test_splits_are_artist_disjoint(tracks):
    small = tracks[tracks[("set", "subset")] == "small"]
    artists = {
        s: set(small.loc[small[("set", "split")] == s, ("artist", "id")])
        for s in ("training", "validation", "test")
    }
    assert not artists["training"] & artists["validation"]
    assert not artists["training"] & artists["test"]
    assert not artists["validation"] & artists["test"]


def test_subset_selection_as_in_fma(tracks):
    """The FACTS.md recipe: an ordered categorical, `<= 'small'` selects the small subset."""
    cat = tracks[("set", "subset")].astype(
        pd.CategoricalDtype(["small", "medium", "large"], ordered=True)
    )
    assert (cat <= "small").sum() == 8 * TPG + len(dd.DEFECTS)
    assert (cat <= "medium").sum() == 8 * TPG + len(dd.DEFECTS) + dd.N_MEDIUM_ROWS


def test_genres_csv(demo):
    root, _ = demo
    genres = pd.read_csv(root / "fma_metadata" / "genres.csv")
    assert list(genres.columns) == ["genre_id", "#tracks", "parent", "title", "top_level"]
    tops = genres[genres["parent"] == 0].set_index("title")
    assert tops["genre_id"].to_dict() == {
        "Electronic": 15,
        "Experimental": 38,
        "Folk": 17,
        "Hip-Hop": 21,
        "Instrumental": 1235,
        "International": 2,
        "Pop": 10,
        "Rock": 12,
    }
    assert (tops["top_level"] == tops["genre_id"]).all()
    subs = genres[genres["parent"] != 0]
    assert (
        set(subs["parent"]) <= set(tops["genre_id"]) and (subs["top_level"] == subs["parent"]).all()
    )
    assert (genres["#tracks"] > 0).all()


# ------------------------------------------------------------------------------ audio files
def test_audio_files_layout_and_decoding(demo, tracks):
    root, summary = demo
    small = tracks[tracks[("set", "subset")] == "small"]
    good = [t for t in small.index if t not in summary["bad_files"]]
    rates, channels = set(), set()
    for tid in good:
        path = _mp3(root, tid)
        assert path.is_file(), path
        assert path.parent.name == f"{tid:06d}"[:3] and path.parent.parent.name == "fma_small"
        data, sr = sf.read(path, always_2d=True)
        assert abs(len(data) / sr - DUR) < 0.1, (tid, len(data) / sr)
        assert (
            np.abs(data).max() < 1.0 and np.sqrt(np.mean(data**2)) > 1e-3
        )  # no clipping, not silent
        rates.add(sr)
        channels.add(data.shape[1])
    assert len(rates) >= 2 and rates <= {22_050, 44_100, 48_000}
    assert channels == {1, 2}
    # medium/large rows have no audio, as in the fma_small download
    others = tracks.index[tracks[("set", "subset")] != "small"]
    assert not any(_mp3(root, t).exists() for t in others)
    assert summary["n_mp3_files"] == len(small) - 1  # all but the missing one


@pytest.mark.numeric  # bitwise in one process, so at any instruction set: checked capped too
def test_the_pipelines_loader_reads_the_demo_mp3s_as_librosa_does(demo, tracks):
    """The spectrogram and feature stages read audio with music_genre.audio.decode.load_audio (the
    documented equivalent of librosa.load): on a stereo demo MP3 at 44.1 kHz, mixed to mono and
    resampled to 22.05 kHz, it gives librosa's samples exactly, DUR seconds of them."""
    librosa = pytest.importorskip("librosa")
    from music_genre.audio.decode import load_audio

    root, summary = demo
    stereo = next(
        _mp3(root, t)
        for t in tracks.index
        if t not in summary["bad_files"]
        and _mp3(root, t).is_file()
        and sf.info(_mp3(root, t)).channels == 2
    )
    ours, rate = load_audio(stereo, sample_rate=22050)
    theirs, _ = librosa.load(stereo, sr=22050, mono=True)
    assert rate == 22050 and ours.shape == theirs.shape == (round(DUR * 22050),)
    np.testing.assert_array_equal(ours, theirs)


def test_bad_files_have_their_defects(demo):
    root, summary = demo
    bad = summary["bad_files"]
    assert sorted(bad.values()) == sorted(dd.DEFECTS)
    by_defect = {d: _mp3(root, t) for t, d in bad.items()}
    assert by_defect["empty"].is_file() and by_defect["empty"].stat().st_size == 0
    assert not by_defect["missing"].exists()
    data, sr = sf.read(by_defect["short"])
    assert 1.0 < len(data) / sr < DUR * 0.75  # min(3 s, duration / 2) = 1.5 s here
    with pytest.raises(sf.LibsndfileError):
        sf.read(by_defect["not_audio"])
    assert by_defect["not_audio"].read_bytes().startswith(b"<!DOCTYPE html>")
    # a valid MP3 cut to TRUNCATE_FRACTION of its bytes: it decodes, to at most that fraction
    # of its length (less the encoder's start-up frames), as after an interrupted download
    data, sr = sf.read(by_defect["truncated"])
    assert 0 < len(data) / sr <= fma_layout.TRUNCATE_FRACTION * DUR
    manifest = json.loads((root / "demo_manifest.json").read_text())
    assert {int(k): v for k, v in manifest["bad_files"].items()} == bad
    assert "missing" in (root / "README.txt").read_text()


def test_no_temporary_files_left(demo):
    root, _ = demo
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []
    assert all(
        p.stat().st_mode & 0o044 == 0o044 for p in root.rglob("*") if p.is_file()
    )  # readable by all


# ------------------------------------------------------------------------------ determinism
def test_same_seed_same_output_regardless_of_workers(demo, demo_serial):
    (root2, s2), (root1, s1) = demo, demo_serial
    assert (root2 / "fma_metadata" / "tracks.csv").read_bytes() == (
        root1 / "fma_metadata" / "tracks.csv"
    ).read_bytes()
    assert (root2 / "fma_metadata" / "genres.csv").read_bytes() == (
        root1 / "fma_metadata" / "genres.csv"
    ).read_bytes()
    assert s2["bad_files"] == s1["bad_files"] and s2["counts"] == s1["counts"]
    files2 = sorted(p.relative_to(root2) for p in (root2 / "fma_small").rglob("*.mp3"))
    files1 = sorted(p.relative_to(root1) for p in (root1 / "fma_small").rglob("*.mp3"))
    assert files2 == files1 and files2
    for rel in files2:
        if (root2 / rel).stat().st_size == 0 or (root2 / rel).read_bytes().startswith(b"<!"):
            assert (root2 / rel).read_bytes() == (root1 / rel).read_bytes()
            continue
        a2, sr2 = sf.read(root2 / rel)
        a1, sr1 = sf.read(root1 / rel)
        assert sr2 == sr1 and np.array_equal(a2, a1), rel


def test_different_seed_gives_different_audio():
    a0, sr0, _ = dd.synthesize_track("Rock", 0, 900_000, 90_001, 2.0)
    a0b, sr0b, _ = dd.synthesize_track("Rock", 0, 900_000, 90_001, 2.0)
    a1, sr1, _ = dd.synthesize_track("Rock", 1, 900_000, 90_001, 2.0)
    assert sr0 == sr0b and np.array_equal(a0, a0b)
    assert a0.shape != a1.shape or not np.allclose(a0, a1)
    other_track, _, _ = dd.synthesize_track("Rock", 0, 900_001, 90_001, 2.0)
    assert a0.shape != other_track.shape or not np.allclose(a0, other_track)


# ------------------------------------------------------------------------------ separability
def _features(y: np.ndarray, sr: int) -> tuple[float, np.ndarray]:
    """Mean spectral centroid and mean log energy in 16 log-spaced bands (a crude MFCC stand-in)."""
    y = y if y.ndim == 1 else y.mean(axis=1)
    frames = np.lib.stride_tricks.sliding_window_view(y, 2048)[::512] * np.hanning(2048)
    mag = np.abs(np.fft.rfft(frames, axis=1))
    freqs = np.fft.rfftfreq(2048, 1 / sr)
    centroid = float(((mag * freqs).sum(1) / (mag.sum(1) + 1e-9)).mean())
    edges = np.geomspace(40, 10_000, 17)
    bands = np.stack(
        [
            mag[:, (freqs >= lo) & (freqs < hi)].sum(1)
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ],
        1,
    )
    return centroid, np.log(bands.mean(0) + 1e-9)


def test_genres_are_audibly_different_but_not_trivially():
    """5 tracks per genre (each by a different artist): genres must be told apart well above
    chance (1/8) by a nearest-centroid rule on band energies, and differ in brightness."""
    genres = sorted(dd.GENRES)
    X, cent, labels = [], [], []
    for gi, genre in enumerate(genres):
        for k in range(5):
            audio, sr, _ = dd.synthesize_track(
                genre, SEED, 950_000 + 10 * gi + k, 95_000 + 10 * gi + k, 3.0
            )
            c, bands = _features(audio, sr)
            X.append(bands), cent.append(c), labels.append(genre)
    X, cent, labels = np.array(X), np.array(cent), np.array(labels)
    per_genre = {g: cent[labels == g].mean() for g in genres}
    assert max(per_genre.values()) / min(per_genre.values()) > 1.5, per_genre
    Z = (X - X.mean(0)) / X.std(0)
    hits = 0
    for i in range(len(labels)):  # leave-one-out nearest class mean
        rest = np.arange(len(labels)) != i
        means = {g: Z[rest & (labels == g)].mean(0) for g in genres}
        hits += min(means, key=lambda g: np.sum((Z[i] - means[g]) ** 2)) == labels[i]
    accuracy = hits / len(labels)
    assert accuracy >= 0.3, accuracy  # chance is 0.125; measured 0.375 when written


# ------------------------------------------------------------------------------ CLI / robustness
def test_cli_skips_existing_dataset(demo, capsys):
    root, _ = demo
    tracks_csv = root / "fma_metadata" / "tracks.csv"
    before = tracks_csv.stat().st_mtime_ns
    assert dd.main(["--root", str(root)]) == 0
    assert "already present" in capsys.readouterr().out
    assert tracks_csv.stat().st_mtime_ns == before


def test_cli_force_regenerates_and_removes_stale_files(tmp_path, capsys):
    root = tmp_path / "demo"
    args = ["--root", str(root), "--duration", "1", "--workers", "1", "--seed", "3"]
    assert dd.main([*args, "--tracks-per-genre", "2"]) == 0
    n_before = len(list(root.rglob("*.mp3")))
    assert dd.main([*args, "--tracks-per-genre", "1", "--force"]) == 0
    tracks = pd.read_csv(root / "fma_metadata" / "tracks.csv", index_col=0, header=[0, 1])
    small = tracks.index[tracks[("set", "subset")] == "small"]
    on_disk = {int(p.stem) for p in root.rglob("*.mp3")}
    assert len(on_disk) < n_before
    assert on_disk == set(small) - {t for t in small if not _mp3(root, t).exists()}
    assert len(on_disk) == 8 + len(dd.DEFECTS) - 1
    assert "deliberately bad files" in capsys.readouterr().out


def test_interrupted_generation_is_not_marked_complete(tmp_path, monkeypatch):
    root = tmp_path / "demo"
    dd.generate_demo_dataset(root, tracks_per_genre=1, duration_s=0.5, workers=1)
    assert (root / "fma_metadata" / "tracks.csv").exists()
    calls = {"n": 0}
    real = fma_layout._build_track

    def flaky(task):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of a regeneration
        return real(task)

    monkeypatch.setattr(fma_layout, "_build_track", flaky)
    with pytest.raises(KeyboardInterrupt):
        dd.generate_demo_dataset(root, tracks_per_genre=1, duration_s=0.5, workers=1)
    assert not (root / "fma_metadata" / "tracks.csv").exists()  # so `main` will regenerate
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]
