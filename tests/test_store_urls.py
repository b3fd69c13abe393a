"""The three incremental stores on an fsspec URL behave as on a local folder: the same content,
the same skipping of stored items, the same detection of damaged files, atomic writes.

``memory://`` is fsspec's in-process object store: nothing of it is a local path, so any code
that still assumes one fails here. (The stores are written and read by the driver; workers only
read audio, see tests/test_audio_urls.py for audio on S3.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import fsspec
import numpy as np
import pytest
from kedro.runner import SequentialRunner

from music_genre.datasets import (
    FeatureRowsDataset,
    FeatureRowsIndexDataset,
    FeatureStoreDataset,
    FeatureStoreIndexDataset,
)
from music_genre.datasets.feature_rows import FeatureRow
from music_genre.datasets.feature_store import FeatureBatch, FeatureManifest, stored_with
from music_genre.infra.storage import StoreFolder
from music_genre.pipelines.spectrogram import create_pipeline as spectrogram_pipeline
from tests.pipelines.spectrogram.test_spectrogram import PARAMS, _catalog, _tracks, audio  # noqa: F401


@pytest.fixture
def memory_url() -> Iterator[str]:
    """A fresh folder of fsspec's in-memory filesystem, removed afterwards."""
    url = f"memory://store-test-{uuid.uuid4().hex[:8]}"
    yield url
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url, recursive=True)


@pytest.mark.slow
def test_spectrogram_store_on_a_url_equals_the_local_store(audio, tmp_path, memory_url):  # noqa: F811
    tracks = _tracks(audio, ["mp3_44k_stereo", "wav_22k_mono", "broken"])
    local = _catalog(tracks, tmp_path / "spectrograms", PARAMS)
    remote = _catalog(tracks, f"{memory_url}/spectrograms", PARAMS)
    for catalog in (local, remote):
        SequentialRunner().run(spectrogram_pipeline(), catalog)
    here, there = local.load("log_mel_spectrograms"), remote.load("log_mel_spectrograms")
    assert sorted(there) == sorted(here) == ["000000", "000001"]
    for key in here:
        np.testing.assert_array_equal(there[key](), here[key]())
    assert there.failures.keys() == here.failures.keys() == {"000002"}
    # the index on the URL says everything is stored: a re-run computes nothing
    index = remote.load("log_mel_spectrogram_store_index")
    assert {k for stored in index.values() for k in stored} == {"000000", "000001"}
    folder = StoreFolder(f"{memory_url}/spectrograms")
    names_before = sorted(e.name for e in folder.child(there.fingerprint).entries())
    SequentialRunner().run(spectrogram_pipeline(), remote)
    assert sorted(e.name for e in folder.child(there.fingerprint).entries()) == names_before


@pytest.mark.slow
def test_a_damaged_spectrogram_on_a_url_is_named_and_recomputed(audio, memory_url, caplog):  # noqa: F811
    tracks = _tracks(audio, ["mp3_44k_stereo", "wav_22k_mono"])
    catalog = _catalog(tracks, f"{memory_url}/spectrograms", PARAMS)
    SequentialRunner().run(spectrogram_pipeline(), catalog)
    stored = catalog.load("log_mel_spectrograms")
    before = stored["000001"]()
    fs = fsspec.filesystem("memory")
    (damaged,) = fs.glob(f"{memory_url}/spectrograms/{stored.fingerprint}/000001.*.npy")
    fs.pipe_file(damaged, fs.cat_file(damaged)[:-100])  # truncated
    with caplog.at_level("WARNING"):
        assert "000001" not in catalog.load("log_mel_spectrograms")
    assert "000001" in caplog.text and "truncated" in caplog.text
    SequentialRunner().run(spectrogram_pipeline(), catalog)
    np.testing.assert_array_equal(catalog.load("log_mel_spectrograms")["000001"](), before)


def test_feature_rows_on_a_url(memory_url, caplog):
    rows = FeatureRowsDataset(f"{memory_url}/rows")
    index = FeatureRowsIndexDataset(f"{memory_url}/rows")
    assert rows.load() == {} and index.load() == {}
    rows.save(
        {
            "000001": FeatureRow(np.arange(3, dtype=np.float32), "p1"),
            "000002": FeatureRow(np.empty(0, np.float32), "p2", "ValueError: not audio"),
        }
    )
    loaded = rows.load()
    np.testing.assert_array_equal(loaded["000001"].values, [0, 1, 2])
    assert loaded["000002"].error == "ValueError: not audio"
    assert index.load() == {"000001": "p1"}  # a failed row is not "stored": it is retried
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"{memory_url}/rows/000001.npz", b"PK\x03\x04 truncated")
    with caplog.at_level("WARNING"):
        assert index.load() == {}
    assert f"{memory_url}/rows/000001.npz" in caplog.text


def _batch(ids: list[str], key: str = "net__w") -> FeatureBatch:
    values = np.array([[float(i)] * 4 for i in range(len(ids))], dtype=np.float32)
    return FeatureBatch(ids, [f"d{i}" for i in ids], {"fc": values}, key=key)


def _manifest(ids: list[str], computed: int, key: str = "net__w") -> FeatureManifest:
    return FeatureManifest(
        key=key,
        feature_names=("fc",),
        description={"backbone": "net"},
        items={i: f"d{i}" for i in ids},
        computed=computed,
    )


def test_feature_store_on_a_url(memory_url, caplog):
    url = f"{memory_url}/features"
    store, index = FeatureStoreDataset(url), FeatureStoreIndexDataset(url)
    store.save(_batch(["a", "b"]))
    store.save(_batch(["c"]))
    store.save(_manifest(["a", "b", "c"], computed=3))
    stored = index.load()
    assert stored_with(stored["net__w"], ["fc"]) == {("a", "da"), ("b", "db"), ("c", "dc")}
    assert stored_with(stored["net__w"], ["fc", "pool"]) == set()
    features = store.load()
    assert features.keys() == ["net__w"]
    np.testing.assert_array_equal(features.matrix("net__w", "fc", ["c", "a"])[:, 0], [0.0, 0.0])
    np.testing.assert_array_equal(features.matrix("net__w", "fc", ["b"])[:, 0], [1.0])

    # a damaged part is named, its items are no longer "stored", and the run's manifest
    # removes it once they have been written again
    fs = fsspec.filesystem("memory")
    damaged = sorted(fs.glob(f"{url}/net__w/part-*.npz"))[0]
    fs.pipe_file(damaged, b"not a zip file")
    with caplog.at_level("WARNING"):
        left = stored_with(index.load()["net__w"], ["fc"])
    assert damaged.split("/")[-1] in caplog.text and len(left) < 3
    missing = sorted({"a", "b", "c"} - {item for item, _ in left})
    store.save(_batch(missing))
    store.save(_manifest(["a", "b", "c"], computed=len(missing)))
    caplog.clear()
    with caplog.at_level("WARNING"):  # rewritten under the same name, or removed: no damage left
        assert stored_with(index.load()["net__w"], ["fc"]) == {
            ("a", "da"),
            ("b", "db"),
            ("c", "dc"),
        }
    assert "Damaged" not in caplog.text


def test_a_failed_write_to_a_url_leaves_nothing(memory_url):
    folder = StoreFolder(memory_url)
    with pytest.raises(RuntimeError, match="disk full"), folder.writing("x.npy") as handle:
        handle.write(b"half")
        raise RuntimeError("disk full")
    assert not folder.is_file("x.npy")
    with folder.writing("x.npy") as handle:
        handle.write(b"whole")
    assert folder.read_text("x.npy") == "whole"
