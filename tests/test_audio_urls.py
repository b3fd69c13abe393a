"""Raw audio addressed by fsspec URLs: an FMA-layout demo and a folder-per-genre collection on
S3 (moto's S3 server on 127.0.0.1), read by ingestion, spectrogram and handcrafted extraction
in worker processes, give what the same run on the local copy gives.

The server's endpoint and dummy credentials reach s3fs through the environment
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...), as they would in a real deployment: the worker
processes inherit them and build their own S3 filesystem.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from kedro.io import DataCatalog, DatasetError

from music_genre.audio.decode import AudioDecodeError, _Source, load_audio, probe_audio, read_tag
from music_genre.audio.features import FMA_SETTINGS
from music_genre.audio.spectrograms import STUDY_SETTINGS, source_tag
from music_genre.datasets import AudioCollectionDataset
from music_genre.demo.fma_layout import generate_demo_dataset
from music_genre.infra.location import (
    FilesystemUnavailableError,
    absolute,
    file_stamp,
    is_url,
    join,
    list_files,
    local_path,
    relative_to,
)
from music_genre.pipelines.handcrafted.nodes import extract_handcrafted_features
from music_genre.pipelines.ingestion import nodes as ingestion_nodes
from music_genre.pipelines.spectrogram.nodes import compute_log_mel_spectrograms
from tests.helpers.audio import tone
from tests.helpers.parameters import base_parameters
from tests.pipelines.ingestion.test_ingestion import _run

BUCKET = "music"
INGESTION = {  # complete: the nodes validate it (IngestionParams)
    "source": "fma",
    "fma_root": "data/01_raw/fma",
    "subset": "small",
    "min_duration_s": 2.0,
    "workers": 2,  # worker processes: they read the audio from S3 themselves
    "split_fractions": {"training": 0.8, "validation": 0.1, "test": 0.1},
    "split_seed": 42,
    "known_bad_tracks": {},
    "reuse_probes": True,
}
SPECTROGRAM = {
    **STUDY_SETTINGS,
    "duration_s": 2.0,
    "pad_mode": "repeat",
    "storage_dtype": "float16",
    "workers": 2,
    "write_batch_size": 8,
}
HANDCRAFTED = {
    **base_parameters("handcrafted"),  # complete: the nodes validate it
    "source": "extract",
    "extraction": {**FMA_SETTINGS, "workers": 2, "save_every": 8},
}


def _stop_worker_pool() -> None:
    """loky's process-wide pool (music_genre.infra.parallel) keeps workers that were started before
    the environment changed: stop them, so the next run starts workers that inherit it."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True, kill_workers=True)


@pytest.fixture(scope="module")
def s3() -> Iterator[object]:
    """moto's S3 server on 127.0.0.1 (a free port), one bucket; s3fs reaches it through the
    environment. Stopped, and the environment restored, also when a test fails."""
    # s3fs and moto[server] are in the test extra (pip install -e '.[test]')
    from moto.server import ThreadedMotoServer
    from s3fs import S3FileSystem

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # no log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
            env.setenv("AWS_ACCESS_KEY_ID", "testing")
            env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            env.setenv("AWS_DEFAULT_REGION", "us-east-1")
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
                env.delenv(name, raising=False)
            S3FileSystem.clear_instance_cache()
            _stop_worker_pool()
            try:
                fs = S3FileSystem()
                fs.mkdir(BUCKET)
                yield fs
            finally:
                _stop_worker_pool()
                S3FileSystem.clear_instance_cache()
    finally:
        server.stop()
        werkzeug.setLevel(level)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, s3) -> tuple[str, str]:
    """(local root, s3 URL) of the same small FMA-layout demo: 2 tracks per genre of 3 s plus
    the demo's five deliberately broken files (empty, not audio, short, truncated, missing)."""
    root = tmp_path_factory.mktemp("demo") / "fma"
    generate_demo_dataset(root, tracks_per_genre=2, duration_s=3.0, seed=0, workers=1)
    s3.put(str(root), f"{BUCKET}/demo", recursive=True)
    return str(root), f"s3://{BUCKET}/demo"


def _relative(frame: pd.DataFrame, root: str) -> pd.DataFrame:
    """Paths (and the reasons that quote them) relative to the collection root."""
    prefix = absolute(root) + "/"
    return frame.assign(
        path=frame["path"].str.replace(prefix, "<root>/", regex=False),
        **(
            {"reason": frame["reason"].str.replace(prefix, "<root>/", regex=False)}
            if "reason" in frame
            else {}
        ),
    )


@pytest.fixture(scope="module")
def probe_files(demo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("probes")
    return {root: folder / f"{'s3' if is_url(root) else 'local'}.parquet" for root in demo}


@pytest.fixture(scope="module")
def ingested(demo, probe_files) -> dict[str, DataCatalog]:
    """Ingestion of the local copy and of the S3 copy (probes decoded in worker processes)."""
    return {
        root: _run(AudioCollectionDataset(source="fma", fma_root=root), INGESTION, probe_file)
        for root, probe_file in probe_files.items()
    }


@pytest.mark.slow
def test_ingestion_from_s3_equals_the_local_run(demo, ingested, probe_files, monkeypatch):
    local, url = demo
    tracks = {root: ingested[root].load("tracks") for root in (local, url)}
    remote = tracks[url]
    assert len(remote) == 16 and remote["genre"].nunique() == 8
    assert remote["path"].str.startswith(f"{url}/fma_small/").all()
    pd.testing.assert_frame_equal(remote.drop(columns="path"), tracks[local].drop(columns="path"))
    pd.testing.assert_frame_equal(_relative(remote, url), _relative(tracks[local], local))

    # the broken files get the same reasons, naming the URL instead of the local path
    bad = {root: ingested[root].load("bad_tracks") for root in (local, url)}
    pd.testing.assert_frame_equal(_relative(bad[url], url), _relative(bad[local], local))
    reasons = dict(zip(bad[url]["track_id"], bad[url]["reason"], strict=True))
    assert reasons["900016"] == f"unreadable: {url}/fma_small/900/900016.mp3: empty file (0 bytes)"
    assert reasons["900017"].startswith(
        f"unreadable: {url}/fma_small/900/900017.mp3: cannot decode"
    )
    assert reasons["900020"].startswith("file missing")
    assert bad[url].set_index("track_id").loc["900020", "path"] == (
        f"{url}/fma_small/900/900020.mp3"
    )

    # the probe cache keys S3 objects by size and version (ETag), not by an mtime; a second run
    # decodes none of the unchanged objects again
    probed = ingested[url].load("probed_tracks").set_index("track_id")
    assert probed.loc["900000", "file_mtime_ns"].startswith('ETag="')
    assert probed.loc["900000", "file_size"] == os.path.getsize(
        Path(local) / "fma_small" / "900" / "900000.mp3"
    )
    decoded: list[str] = []
    original = ingestion_nodes.run_tasks

    def counting(function, tasks, *args, **kwargs):
        decoded.extend(path for _, (path,) in tasks)
        return original(function, tasks, *args, **kwargs)

    monkeypatch.setattr(ingestion_nodes, "run_tasks", counting)
    again = _run(AudioCollectionDataset(source="fma", fma_root=url), INGESTION, probe_files[url])
    pd.testing.assert_frame_equal(again.load("tracks"), remote)
    # only the files that failed to decode are decoded again (a decoder may have been installed)
    unreadable = bad[url].loc[bad[url]["reason"].str.startswith("unreadable"), "path"]
    assert sorted(decoded) == sorted(unreadable) and len(decoded) == 2


@pytest.mark.slow
def test_spectrograms_and_handcrafted_features_from_s3_equal_the_local_ones(demo, ingested):
    local, url = demo
    spectrograms, rows = {}, {}
    for root in (local, url):
        tracks = ingested[root].load("tracks")
        arrays, tags, failures = {}, {}, {}
        for batch in compute_log_mel_spectrograms(tracks, {}, SPECTROGRAM):
            arrays.update(batch.arrays)
            tags.update(batch.tags)
            failures.update(batch.failures)
        assert not failures and set(arrays) == set(tracks["track_id"]) == set(tags)
        spectrograms[root] = arrays
        rows[root] = {}
        for batch in extract_handcrafted_features(tracks, {}, HANDCRAFTED):
            rows[root].update(batch)
    assert set(spectrograms[url]) == set(spectrograms[local])
    for track_id, array in spectrograms[local].items():
        assert array.shape == (128, 87)
        np.testing.assert_array_equal(spectrograms[url][track_id], array, strict=True)

    assert set(rows[url]) == set(rows[local]) and len(rows[url]) == 16
    for track_id, row in rows[local].items():
        remote = rows[url][track_id]
        assert not row.failed and not remote.failed
        np.testing.assert_array_equal(remote.values, row.values, strict=True)
        # provenance: same settings and byte count, the URL as the path
        local_provenance, remote_provenance = (json.loads(r.provenance) for r in (row, remote))
        assert remote_provenance.pop("path").startswith(f"{url}/fma_small/")
        local_provenance.pop("path")
        assert remote_provenance == local_provenance and remote_provenance["bytes"] > 0


@pytest.mark.slow
def test_a_missing_or_unusable_s3_object_is_named_in_a_clear_error(s3, demo):
    _, url = demo
    missing = f"{url}/fma_small/900/999999.mp3"
    for read in (probe_audio, load_audio):
        with pytest.raises(FileNotFoundError, match=f"^{missing}: file not found$"):
            read(missing)
    with pytest.raises(FileNotFoundError, match=f"^{missing}: file not found$"):
        file_stamp(missing)
    with pytest.raises(OSError, match="file not found"):
        source_tag(missing)
    with pytest.raises(AudioDecodeError, match=f"^{url}/fma_small: is a directory"):
        probe_audio(f"{url}/fma_small")
    with pytest.raises(AudioDecodeError, match=f"^{url}/fma_small/900/900016.mp3: empty file"):
        probe_audio(f"{url}/fma_small/900/900016.mp3")
    with pytest.raises(FilesystemUnavailableError, match=r"nosuch://b/x\.mp3.*protocol 'nosuch'"):
        probe_audio("nosuch://b/x.mp3")
    with pytest.raises(DatasetError, match=r"FMA metadata not found: s3://music/absent/"):
        AudioCollectionDataset(source="fma", fma_root=f"s3://{BUCKET}/absent").load()


@pytest.mark.slow
def test_s3_audio_decodes_bit_for_bit_like_the_local_file(demo):
    local, url = demo
    rel = "fma_small/900/900003.mp3"
    for kwargs in ({}, {"sample_rate": 22050, "duration_s": 1.0, "offset_s": 0.5, "mono": False}):
        remote, rate = load_audio(f"{url}/{rel}", **kwargs)
        expected, expected_rate = load_audio(str(Path(local) / rel), **kwargs)
        assert rate == expected_rate
        np.testing.assert_array_equal(remote, expected, strict=True)
    assert probe_audio(f"{url}/{rel}") == probe_audio(str(Path(local) / rel))


@pytest.mark.slow
def test_the_audioread_fallback_reads_a_temporary_copy_of_an_s3_object_and_deletes_it(
    demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """audioread needs a real file: the object is copied to a temporary folder, decoded, and
    the copy removed. libsndfile is made to refuse the file object to take that path."""
    import tempfile

    local, url = demo
    rel = "fma_small/900/900005.mp3"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    def refuse(self):
        if not isinstance(self.readable, str):
            raise RuntimeError("libsndfile refuses the file object (test)")
        return sf.SoundFile(self.readable)

    monkeypatch.setattr(_Source, "soundfile", refuse)
    remote, rate = load_audio(f"{url}/{rel}", mono=False)
    monkeypatch.undo()
    expected, expected_rate = load_audio(str(Path(local) / rel), mono=False)
    assert rate == expected_rate
    np.testing.assert_array_equal(remote, expected, strict=True)
    assert list(scratch.iterdir()) == []


def test_file_stamp_of_an_s3_object_changes_when_it_is_replaced(s3):
    # a versioned bucket: a HEAD request reports a VersionId, a listing does not
    s3.mkdir("versioned")
    s3.make_bucket_versioned("versioned")
    url = "s3://versioned/stamps/a.wav"
    s3.pipe(url, b"RIFF first version")
    size, version = file_stamp(url)
    tag = source_tag(url)
    assert size == len(b"RIFF first version") and version.startswith('ETag="')
    assert file_stamp(url) == (size, version) and source_tag(url) == tag
    # answered from a listing (s3fs's cache after ls/find) instead of a HEAD: the same stamp
    s3.invalidate_cache()
    s3.ls("versioned/stamps", detail=True)
    assert s3.dircache and file_stamp(url) == (size, version)
    s3.pipe(url, b"RIFF other version")  # same size, other content
    assert file_stamp(url)[0] == size and file_stamp(url)[1] != version
    assert source_tag(url) != tag


@pytest.mark.slow
def test_a_folder_per_genre_collection_under_an_s3_root_is_listed_and_ingested(s3, tmp_path):
    root = f"s3://{BUCKET}/genres"
    files = [f"{genre}/{genre}.{i}.wav" for genre in ("blues", "jazz", "rock") for i in range(2)]
    for rel in files:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(0.6, rate=8000), 8000)
        s3.put_file(str(path), f"{root}/{rel}")
    s3.pipe(f"{root}/rock/notes.txt", b"liner notes")
    split = "path,split\n" + "".join(
        f"{rel},{'training' if rel.endswith('0.wav') else 'test'}\n" for rel in files
    )
    s3.pipe(f"s3://{BUCKET}/genres_split.csv", split.encode())

    assert list_files(root) == sorted([*files, "rock/notes.txt"])
    assert list_files(root + "/") == list_files(root)
    collection = AudioCollectionDataset(
        source="folder", folder=root, split_file=f"s3://{BUCKET}/genres_split.csv"
    )
    assert collection.exists()
    loaded = collection.load()
    assert loaded.files["jazz/jazz.1.wav"].path == f"{root}/jazz/jazz.1.wav"
    assert loaded.split_table["path"].tolist() == files

    catalog = _run(collection, {**INGESTION, "workers": 1, "min_duration_s": 0.5})
    tracks = catalog.load("tracks")
    assert sorted(tracks["path"]) == sorted(f"{root}/{rel}" for rel in files)
    assert dict(zip(tracks["track_id"], tracks["split"], strict=True)) == {
        f"{g}__{g}.{i}": "training" if i == 0 else "test"
        for g in ("blues", "jazz", "rock")
        for i in range(2)
    }
    assert tracks["duration_s"].between(0.59, 0.61).all()
    bad = catalog.load("bad_tracks")
    assert bad["path"].tolist() == [f"{root}/rock/notes.txt"]
    assert read_tag(f"{root}/jazz/jazz.1.wav", "artist") == ""

    with pytest.raises(DatasetError, match=rf"ingestion.folder={root}/absent: folder not found"):
        AudioCollectionDataset(source="folder", folder=f"{root}/absent").load()


def test_location_helpers_keep_local_paths_as_they_were(tmp_path: Path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.wav").write_bytes(b"x")
    assert not is_url(str(tmp_path)) and not is_url(f"file://{tmp_path}")
    assert is_url("s3://b/k") and is_url("simplecache::s3://b/k")
    assert local_path(f"file://{tmp_path}/a") == f"{tmp_path}/a"
    assert join(str(tmp_path), "a", "b") == str(tmp_path / "a" / "b")
    assert join("s3://b/root/", "fma_small", "000/000002.mp3") == (
        "s3://b/root/fma_small/000/000002.mp3"
    )
    assert relative_to(str(tmp_path / "a" / "b" / "x.wav"), str(tmp_path)) == "a/b/x.wav"
    assert relative_to("s3://b/root/g/x.mp3", "s3://b/root/") == "g/x.mp3"
    assert relative_to("s3://b/other/x.mp3", "s3://b/root") is None
    assert list_files(f"file://{tmp_path}") == ["a/b/x.wav"]
    stat = os.stat(tmp_path / "a" / "b" / "x.wav")
    assert file_stamp(str(tmp_path / "a" / "b" / "x.wav")) == (stat.st_size, stat.st_mtime_ns)


def test_fma_features_csv_under_an_s3_root_reads_like_a_local_one(s3):
    from music_genre.audio.features import feature_columns
    from music_genre.datasets import FmaFeaturesDataset

    columns = list(feature_columns())
    header = [
        ",".join([level] + [c[i] for c in columns])
        for i, level in enumerate(("feature", "statistics", "number"))
    ]
    rows = [f"{tid}," + ",".join([str(float(tid))] * len(columns)) for tid in (2, 5)]
    text = "\n".join([*header, "track_id" + "," * len(columns), *rows]) + "\n"
    url = f"s3://{BUCKET}/fma/fma_metadata/features.csv"
    s3.pipe(url, text.encode())
    dataset = FmaFeaturesDataset(url)
    assert dataset.exists() and dataset.load().exists()
    table = dataset.load().read(["000005"])
    assert table.index.tolist() == ["000005"] and (table.to_numpy() == 5.0).all()
    assert not FmaFeaturesDataset(f"s3://{BUCKET}/absent/features.csv").exists()
    with pytest.raises(DatasetError, match=r"FMA features not found: s3://music/absent/"):
        FmaFeaturesDataset(f"s3://{BUCKET}/absent/features.csv").load().read()
