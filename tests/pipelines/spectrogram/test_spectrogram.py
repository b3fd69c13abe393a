"""Spectrogram pipeline: equality with librosa, the store (skip, settings change, resume,
atomic writes), bad files, parallel workers, and the pipeline on an in-memory catalog."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner

from music_genre.audio.spectrograms import (
    STUDY_SETTINGS,
    decode_window,
    log_mel_spectrogram,
    settings_fingerprint,
    spectrogram_from_file,
    spectrogram_settings,
)
from music_genre.datasets import (
    SpectrogramStoreDataset,
    SpectrogramStoreIndexDataset,
    spectrogram_store,
)
from music_genre.pipelines.spectrogram import create_pipeline
from music_genre.pipelines.spectrogram import nodes as spectrogram_nodes
from music_genre.pipelines.spectrogram.nodes import BAD_TRACK_COLUMNS, compute_log_mel_spectrograms

librosa = pytest.importorskip("librosa")

PARAMS = {
    **STUDY_SETTINGS,
    "pad_mode": "repeat",
    "storage_dtype": "float16",
    "workers": 1,
    "write_batch_size": 2,
}
FLOAT16_RTOL = 2.0**-11  # float16 keeps 11 significant bits: relative rounding error <= 2^-11


def _music(seconds: float, sample_rate: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = sum(0.1 / k * np.sin(2 * np.pi * (150 + 40 * seed) * k * t) for k in range(1, 5))
    wave = tone * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t)) + 0.02 * rng.standard_normal(t.size)
    data = np.stack([wave * (1 - 0.2 * c) for c in range(channels)], axis=1)
    return (data if channels > 1 else data[:, 0]).astype(np.float32)


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> dict[str, str]:
    """Full-length clips in FMA's usual formats, a short clip and two broken files."""
    root = tmp_path_factory.mktemp("audio")
    files = {
        "mp3_44k_stereo": ("a.mp3", 30.0, 44100, 2, "MP3"),
        "wav_48k_stereo": ("b.wav", 30.0, 48000, 2, "WAV"),
        "wav_22k_mono": ("c.wav", 30.0, 22050, 1, "WAV"),
        "short_10s": ("d.wav", 10.0, 44100, 1, "WAV"),
    }
    paths = {}
    for seed, (name, (filename, seconds, rate, channels, fmt)) in enumerate(files.items()):
        path = root / filename
        sf.write(path, _music(seconds, rate, channels, seed), rate, format=fmt)
        paths[name] = str(path)
    (root / "broken.mp3").write_bytes(b"<html>404 not found</html>")
    paths["broken"] = str(root / "broken.mp3")
    paths["missing"] = str(root / "gone.mp3")
    return paths


def _study_reference(path: str) -> np.ndarray:
    """The study's code, verbatim (FACTS.md)."""
    y, sr = librosa.load(path, sr=22050, mono=True, duration=29.70)
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128, fmax=8000
    )
    return librosa.power_to_db(mel, ref=1.0)


def _tracks(audio: dict[str, str], names: list[str]) -> pd.DataFrame:
    splits = ["training", "validation", "test"]
    return pd.DataFrame(
        {
            "track_id": [f"{i:06d}" for i in range(len(names))],
            "path": [audio[n] for n in names],
            "genre": [f"g{i % 2}" for i in range(len(names))],
            "label": [i % 2 for i in range(len(names))],
            "split": [splits[i % 3] for i in range(len(names))],
        }
    )


def _catalog(tracks: pd.DataFrame, store: Path, params: dict) -> DataCatalog:
    return DataCatalog(
        {
            "tracks": MemoryDataset(tracks),
            "params:spectrogram": MemoryDataset(params),
            "log_mel_spectrograms": SpectrogramStoreDataset(str(store)),
            "log_mel_spectrogram_store_index": SpectrogramStoreIndexDataset(str(store)),
            "bad_tracks_spectrogram": MemoryDataset(),
            "spectrogram_examples": MemoryDataset(),
        }
    )


@pytest.fixture
def count_computed(monkeypatch) -> list[str]:
    """Track ids whose spectrogram is handed to the workers to compute."""
    computed: list[str] = []
    original = spectrogram_nodes.run_tasks

    def counting(function, tasks, *args, **kwargs):
        computed.extend(key for key, _ in tasks)
        return original(function, tasks, *args, **kwargs)

    monkeypatch.setattr(spectrogram_nodes, "run_tasks", counting)
    return computed


def _files(store: Path) -> dict[str, int]:
    return {
        str(p.relative_to(store)): p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()
    }


# -- the computation -----------------------------------------------------------------------
@pytest.mark.numeric
@pytest.mark.parametrize("name", ["mp3_44k_stereo", "wav_48k_stereo", "wav_22k_mono"])
@pytest.mark.slow
def test_spectrogram_equals_librosa(audio, name):
    reference = _study_reference(audio[name])
    ours = spectrogram_from_file(audio[name], spectrogram_settings(PARAMS))
    assert ours.shape == reference.shape == (128, 1280)
    assert ours.dtype == np.float32
    # Same decoder, resampler and float32 operations as librosa: equal to float32 rounding.
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-4)
    y, _ = librosa.load(audio[name], sr=22050, mono=True, duration=29.70)
    assert np.array_equal(decode_window(audio[name], STUDY_SETTINGS), y)


@pytest.mark.numeric
@pytest.mark.parametrize(
    ("sr", "n_fft", "hop", "n_mels", "fmax"),
    [(22050, 2048, 512, 128, 8000), (16000, 512, 256, 96, 8000.0)],
)
def test_log_mel_equals_librosa_for_other_settings(sr, n_fft, hop, n_mels, fmax):
    settings = {
        "sample_rate": sr,
        "n_fft": n_fft,
        "hop_length": hop,
        "n_mels": n_mels,
        "fmax": fmax,
    }
    rng = np.random.default_rng(1)
    for y in (rng.standard_normal(sr * 2).astype(np.float32), rng.standard_normal(sr + 123)):
        mel = librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmax=fmax
        )
        np.testing.assert_allclose(
            log_mel_spectrogram(y, settings),
            librosa.power_to_db(mel, ref=1.0),
            rtol=1e-6,
            atol=1e-4,
        )


@pytest.mark.numeric
def test_to_mono_is_numpy_mean_bit_for_bit():
    from music_genre.audio.decode import to_mono

    channels = np.random.default_rng(0).standard_normal((3, 10001)).astype(np.float32)
    for n in (1, 2, 3):
        assert np.array_equal(to_mono(channels[:n]), np.mean(channels[:n], axis=0))


@pytest.mark.numeric
@pytest.mark.parametrize("pad_mode", ["repeat", "zeros"])
def test_short_clip_is_padded_to_the_window(audio, pad_mode):
    y, _ = librosa.load(audio["short_10s"], sr=22050, mono=True)
    n = 654885
    padded = np.tile(y, -(-n // y.size))[:n] if pad_mode == "repeat" else np.pad(y, (0, n - y.size))
    mel = librosa.feature.melspectrogram(
        y=padded, sr=22050, n_fft=2048, hop_length=512, n_mels=128, fmax=8000
    )
    settings = spectrogram_settings({**PARAMS, "pad_mode": pad_mode})
    ours = spectrogram_from_file(audio["short_10s"], settings)
    assert ours.shape == (128, 1280)
    np.testing.assert_allclose(ours, librosa.power_to_db(mel, ref=1.0), rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("pad_mode", "mirror", "spectrogram.pad_mode"),
        ("n_mels", 0, "spectrogram.n_mels"),
        ("storage_dtype", "int8", "spectrogram.storage_dtype"),
        ("fmax", 20000, "Nyquist"),
    ],
)
def test_bad_settings_name_the_parameter(key, value, message):
    with pytest.raises(ValueError, match=message):
        spectrogram_settings({**PARAMS, key: value})


def test_settings_fingerprint_ignores_workers_but_not_settings():
    base = spectrogram_settings(PARAMS)
    fingerprint = settings_fingerprint(base)
    assert settings_fingerprint(spectrogram_settings({**PARAMS, "workers": 8})) == fingerprint
    assert settings_fingerprint(spectrogram_settings({**PARAMS, "n_mels": 64})) != fingerprint


# -- the pipeline --------------------------------------------------------------------------
@pytest.mark.slow
def test_pipeline_stores_every_good_track_and_reports_bad_ones(audio, tmp_path, count_computed):
    names = ["mp3_44k_stereo", "wav_48k_stereo", "broken", "wav_22k_mono", "missing"]
    tracks = _tracks(audio, names)
    catalog = _catalog(tracks, tmp_path / "store", PARAMS)
    SequentialRunner().run(create_pipeline(), catalog)

    spectrograms = catalog.load("log_mel_spectrograms")
    assert sorted(spectrograms) == ["000000", "000001", "000003"]
    for track_id, name in (("000000", names[0]), ("000001", names[1]), ("000003", names[3])):
        spec = spectrograms[track_id]()
        assert spec.shape == (128, 1280) and spec.dtype == np.float32
        np.testing.assert_allclose(
            spec, _study_reference(audio[name]), rtol=FLOAT16_RTOL, atol=1e-3
        )

    bad = catalog.load("bad_tracks_spectrogram")
    assert list(bad.columns) == BAD_TRACK_COLUMNS
    assert list(bad["track_id"]) == ["000002", "000004"]
    assert set(bad["stage"]) == {"spectrogram"}
    assert "broken.mp3" in bad.loc[0, "reason"] and "decode" in bad.loc[0, "reason"]
    assert "unavailable" in bad.loc[1, "reason"]
    assert list(bad["split"]) == ["test", "validation"]
    assert catalog.load("spectrogram_examples").axes  # a figure with panels
    assert sorted(count_computed) == ["000000", "000001", "000002", "000003"]


def test_rerun_skips_stored_tracks_and_settings_change_recomputes(audio, tmp_path, count_computed):
    tracks = _tracks(audio, ["wav_22k_mono", "short_10s"])
    store = tmp_path / "store"
    SequentialRunner().run(create_pipeline(), _catalog(tracks, store, PARAMS))
    assert len(count_computed) == 2
    before = _files(store)

    count_computed.clear()
    SequentialRunner().run(create_pipeline(), _catalog(tracks, store, PARAMS))
    assert count_computed == []
    assert _files(store) == before  # nothing rewritten, not even the manifest

    count_computed.clear()
    catalog = _catalog(tracks, store, {**PARAMS, "n_mels": 64})
    SequentialRunner().run(create_pipeline(), catalog)
    assert sorted(count_computed) == ["000000", "000001"]
    assert catalog.load("log_mel_spectrograms")["000000"]().shape == (64, 1280)

    count_computed.clear()  # switching back reuses the first settings' folder
    catalog = _catalog(tracks, store, PARAMS)
    SequentialRunner().run(create_pipeline(), catalog)
    assert count_computed == []
    assert catalog.load("log_mel_spectrograms")["000000"]().shape == (128, 1280)


def test_changed_audio_file_is_recomputed(audio, tmp_path, count_computed):
    source = tmp_path / "track.wav"
    sf.write(source, _music(30.0, 22050, 1, seed=5), 22050)
    tracks = pd.DataFrame(
        {
            "track_id": ["000001"],
            "path": [str(source)],
            "genre": ["g"],
            "label": [0],
            "split": ["training"],
        }
    )
    store = tmp_path / "store"
    catalog = _catalog(tracks, store, PARAMS)
    SequentialRunner().run(create_pipeline(), catalog)
    first = catalog.load("log_mel_spectrograms")["000001"]()

    sf.write(source, _music(30.0, 22050, 1, seed=6), 22050)  # same size, new content
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    count_computed.clear()
    SequentialRunner().run(create_pipeline(), catalog)
    assert count_computed == ["000001"]
    assert not np.array_equal(catalog.load("log_mel_spectrograms")["000001"](), first)
    assert len(list(store.rglob("000001.*.npy"))) == 1  # the superseded file is gone


def test_interrupted_run_resumes_without_corrupt_files(audio, tmp_path, count_computed):
    names = ["mp3_44k_stereo", "wav_48k_stereo", "wav_22k_mono", "short_10s"]
    tracks = _tracks(audio, names)
    store_path = tmp_path / "store"
    store = SpectrogramStoreDataset(str(store_path))
    index = SpectrogramStoreIndexDataset(str(store_path))
    params = {**PARAMS, "write_batch_size": 1}

    # A run killed after writing one spectrogram, while writing the next one.
    chunks = compute_log_mel_spectrograms(tracks, index.load(), params)
    store.save(next(chunks))  # manifest
    store.save(next(chunks))  # first spectrogram
    chunks.close()
    folder = store_path / settings_fingerprint(spectrogram_settings(params))
    stray = folder / ".000001.abc.npy.x1y2.tmp"
    stray.write_bytes(b"\x93NUMPY half-written")
    assert len(store.load()) == 1  # readers see only complete files

    count_computed.clear()
    catalog = _catalog(tracks, store_path, params)
    SequentialRunner().run(create_pipeline(), catalog)
    assert sorted(count_computed) == ["000001", "000002", "000003"]
    assert not stray.exists()
    spectrograms = catalog.load("log_mel_spectrograms")
    assert sorted(spectrograms) == ["000000", "000001", "000002", "000003"]
    np.testing.assert_allclose(
        spectrograms["000000"](), _study_reference(audio[names[0]]), rtol=FLOAT16_RTOL, atol=1e-3
    )


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    store = SpectrogramStoreDataset(str(tmp_path / "store"))
    from music_genre.audio.spectrograms import SpectrogramBatch

    def exploding_save(handle, array, allow_pickle=False):
        handle.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(spectrogram_store.np, "save", exploding_save)
    batch = SpectrogramBatch("abcdef123456", {}, {"000001": np.zeros((2, 2))}, {"000001": "t1"})
    with pytest.raises(DatasetError, match="disk full"):
        store.save(batch)
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == []


@pytest.mark.numeric
def test_parallel_workers_give_the_same_spectrograms(audio, tmp_path):
    tracks = _tracks(audio, ["mp3_44k_stereo", "wav_48k_stereo", "wav_22k_mono", "broken"])
    results = {}
    for workers in (1, 2):
        # float32 storage: float16 rounding would hide a difference in the last bits
        params = {**PARAMS, "workers": workers, "storage_dtype": "float32"}
        catalog = _catalog(tracks, tmp_path / f"store{workers}", params)
        SequentialRunner().run(create_pipeline(), catalog)
        spectrograms = catalog.load("log_mel_spectrograms")
        results[workers] = {k: spectrograms[k]() for k in spectrograms}
        assert list(catalog.load("bad_tracks_spectrogram")["track_id"]) == ["000003"]
    assert sorted(results[1]) == sorted(results[2]) == ["000000", "000001", "000002"]
    for key, array in results[1].items():
        assert np.array_equal(array, results[2][key])


def test_a_track_that_crashes_its_worker_is_reported_and_the_others_are_stored(
    audio, tmp_path, monkeypatch
):
    from music_genre.infra.parallel import CRASH_KEYS_ENV

    monkeypatch.setenv(CRASH_KEYS_ENV, "000001")
    tracks = _tracks(audio, ["wav_22k_mono", "short_10s", "wav_48k_stereo"])
    catalog = _catalog(tracks, tmp_path / "store", {**PARAMS, "workers": 2})
    SequentialRunner().run(create_pipeline(), catalog)
    assert sorted(catalog.load("log_mel_spectrograms")) == ["000000", "000002"]
    bad = catalog.load("bad_tracks_spectrogram")
    assert bad[["track_id", "reason"]].values.tolist() == [
        ["000001", "worker crashed (signal SIGSEGV)"]
    ]


def test_damaged_stored_spectrograms_are_named_and_recomputed(
    audio, tmp_path, count_computed, caplog
):
    tracks = _tracks(audio, ["wav_22k_mono", "short_10s", "wav_48k_stereo"])
    store = tmp_path / "store"
    SequentialRunner().run(create_pipeline(), _catalog(tracks, store, PARAMS))
    loaded = SpectrogramStoreDataset(str(store)).load()
    before = {k: loaded[k]() for k in loaded}
    files = {p.name.split(".")[0]: p for p in store.rglob("*.npy")}
    truncated, overwritten = files["000000"], files["000002"]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    overwritten.write_bytes(np.random.default_rng(0).bytes(overwritten.stat().st_size))

    count_computed.clear()
    with caplog.at_level("WARNING", logger="music_genre.datasets.spectrogram_store"):
        catalog = _catalog(tracks, store, PARAMS)
        SequentialRunner().run(create_pipeline(), catalog)
    assert sorted(count_computed) == ["000000", "000002"]
    assert str(truncated) in caplog.text and str(overwritten) in caplog.text
    again = catalog.load("log_mel_spectrograms")
    assert sorted(again) == ["000000", "000001", "000002"]
    for key, array in before.items():
        assert np.array_equal(again[key](), array)


def test_store_without_manifest_says_what_to_run(tmp_path):
    with pytest.raises(DatasetError, match="kedro run --pipelines=spectrogram"):
        SpectrogramStoreDataset(str(tmp_path / "nothing")).load()
    assert SpectrogramStoreIndexDataset(str(tmp_path / "nothing")).load() == {}


def test_manifest_lists_settings(audio, tmp_path):
    tracks = _tracks(audio, ["wav_22k_mono"])
    SequentialRunner().run(create_pipeline(), _catalog(tracks, tmp_path / "s", PARAMS))
    manifest = json.loads((tmp_path / "s" / "_current.json").read_text())
    assert manifest["settings"]["n_mels"] == 128
    assert manifest["settings"]["storage_dtype"] == "float16"
    assert list(manifest["tags"]) == ["000000"]
