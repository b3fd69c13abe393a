"""``runtime.executor: dask`` against a real cluster: a scheduler and two workers started as
separate processes on 127.0.0.1 (``dask scheduler`` / ``dask worker``, each worker under its
nanny), stopped - process groups killed - after the tests, also when one fails.

The cluster computes what the local pools compute (track table, spectrogram store, handcrafted
features, musicnn features and the grid search's CV accuracies), the transfer networks run on
the workers (each process builds a network once) in the local run's batches, a worker killed
mid-run loses no track, and a track that kills every worker it reaches ends in the bad-tracks
report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import distributed
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from kedro.io import MemoryDataset
from kedro.runner import SequentialRunner

from music_genre.audio.spectrograms import STUDY_SETTINGS
from music_genre.datasets import AudioCollectionDataset
from music_genre.datasets.feature_store import FeatureBatch
from music_genre.hooks import RuntimeHook
from music_genre.infra import parallel
from music_genre.models.backbones import (
    AudioEmbeddingExtractor,
    AudioWindow,
    BackboneWeightsError,
    CutLevelFeatureExtractor,
    WeightsChoice,
    get_backbone,
    worker_network_counts,
)
from music_genre.pipelines.handcrafted.nodes import extract_handcrafted_features
from music_genre.pipelines.spectrogram import create_pipeline as spectrogram_pipeline
from music_genre.pipelines.transfer import create_pipeline as transfer_pipeline
from music_genre.pipelines.transfer.extraction import AudioEmbeddingJob, CutLevelFeatureJob, run_job
from tests.helpers.dask_tasks import slow_echo, tensorflow_threads
from tests.helpers.parameters import base_parameters
from tests.helpers.tiny_backbone import TINY
from tests.helpers.transfer_catalog import transfer_catalog
from tests.pipelines.handcrafted.test_handcrafted import EXTRACTION
from tests.pipelines.ingestion.test_ingestion import _run as run_ingestion
from tests.pipelines.spectrogram.test_spectrogram import _catalog as spectrogram_catalog
from tests.pipelines.transfer.test_transfer_musicnn import RATE, SECONDS, _clip

# a scheduler and workers in processes of their own, and the pipelines on them
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
GENRES = ["Electronic", "Folk"]
INGESTION = {  # complete (the nodes validate it), with the collection's folder per test
    "source": "folder",
    "fma_root": "data/01_raw/fma",
    "subset": "small",
    "min_duration_s": 2.0,
    "workers": 2,
    "split_fractions": {"training": 0.5, "validation": 0.25, "test": 0.25},
    "split_seed": 42,
    "known_bad_tracks": {},
    "reuse_probes": True,
}
SPECTROGRAM = {
    **STUDY_SETTINGS,
    "duration_s": SECONDS,
    "pad_mode": "repeat",
    "storage_dtype": "float16",
    "workers": 2,
    "write_batch_size": 3,
}
HANDCRAFTED = {
    **base_parameters("handcrafted"),  # complete: the nodes validate it
    "source": "extract",
    "extraction": {**EXTRACTION, "workers": 2, "save_every": 3},
}
TRANSFER = {
    "weights": {"musicnn": "msd"},
    "random_seed": 0,
    "audio": {"duration_s": SECONDS, "pad_mode": "repeat", "workers": 2},
    "batch_size": 4,
    "timing_runs": 1,
    "experiments": [{"backbone": "musicnn", "cut_level": "penultimate", "pca_variances": [0.9]}],
    "cv_folds": 2,
    "n_jobs": 1,  # local: in this process (starting a second pool costs more than it saves)
    "classifiers": {"svm_linear": {"grid": {"C": [0.01, 0.1, 1]}}},
}
# A task that kills its worker is given up after this many workers died (2 instead of Dask's
# default 4 keeps the test short); one task per worker thread (worker-saturation 1.0), so a
# crash marks only the task that was running, never one merely queued on that worker.
ALLOWED_FAILURES = 1
CLUSTER_ENV = {
    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(ALLOWED_FAILURES),
    "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
}


def _dask_command(*args: str) -> list[str]:
    return [sys.executable, "-m", f"distributed.cli.dask_{args[0]}", *args[1:]]


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM each process group (a worker's nanny and its worker process), SIGKILL after 10 s."""
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    import psutil

    members = []
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> str:
    """``tcp://127.0.0.1:<port>`` of a scheduler with two single-threaded workers."""
    folder = tmp_path_factory.mktemp("dask-cluster")
    scheduler_file = folder / "scheduler.json"
    env = {
        **os.environ,
        **CLUSTER_ENV,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
    processes: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        processes.append(
            subprocess.Popen(
                _dask_command(*args),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: the teardown kills it whole
                cwd=folder,
            )
        )
        log.close()

    try:
        start(
            "scheduler",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(scheduler_file),
        )
        for i in range(2):
            start(
                f"worker{i}",
                "worker",
                "--scheduler-file",
                str(scheduler_file),
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--no-dashboard",
                "--name",
                f"w{i}",
            )
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        _stop(processes)
        deadline = time.monotonic() + 10
        while (
            leftovers := [pid for p in processes for pid in _group_members(p.pid)]
        ) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not leftovers, f"cluster processes left running: {leftovers}"


def _wait_for_two_workers(address: str) -> None:
    with distributed.Client(address, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)


def _dask(address: str) -> dict:
    return {"executor": "dask", "address": address}


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("collection")
    for label, genre in enumerate(GENRES):
        for i in range(8):
            path = root / genre / f"{genre.lower()}.{i:03d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, _clip(label, i), RATE)
    (root / "Folk" / "fake.mp3").write_bytes(b"not audio")
    return root


def _stages(collection: Path, folder: Path) -> dict:
    """ingestion -> spectrogram (store) -> handcrafted rows -> transfer (musicnn, grid search)."""
    ingestion = run_ingestion(
        AudioCollectionDataset(source="folder", folder=str(collection)),
        {**INGESTION, "folder": str(collection)},
    )
    tracks = ingestion.load("tracks")
    spectrograms = spectrogram_catalog(tracks, folder / "spectrograms", SPECTROGRAM)
    SequentialRunner().run(spectrogram_pipeline(), spectrograms)
    stored = spectrograms.load("log_mel_spectrograms")
    rows: dict = {}
    for batch in extract_handcrafted_features(tracks, {}, HANDCRAFTED):
        rows.update(batch)
    transfer = transfer_catalog(folder, tracks, {}, TRANSFER)
    SequentialRunner().run(transfer_pipeline(), transfer)
    results = transfer.load("transfer_results")
    ids = tracks["track_id"].tolist()
    return {
        "parts": sorted(p.name for p in (folder / "features").glob("*/part-*.npz")),
        "tracks": tracks,
        "bad_tracks": ingestion.load("bad_tracks"),
        "spectrograms": {key: stored[key]() for key in stored},
        "spectrogram_failures": spectrograms.load("bad_tracks_spectrogram"),
        "features": {key: (row.values, row.error) for key, row in rows.items()},
        "embeddings": transfer.load("transfer_features").matrix(
            f"musicnn__msd__audio-{SECONDS}s-repeat", "penultimate", ids
        ),
        "cv": results[["classifier", "best_params", "cv_accuracy", "test_accuracy"]],
    }


def test_a_cluster_run_equals_the_local_run(
    cluster,
    collection,
    tmp_path,
    mlflow_store,
):
    local = _stages(collection, tmp_path / "local")
    with parallel.using(_dask(cluster)):
        client = parallel.dask_client()
        before = client.run(worker_network_counts)
        on_dask = _stages(collection, tmp_path / "dask")
        after = client.run(worker_network_counts)
        assert client.scheduler_info()["address"] == cluster  # it really ran there
    # musicnn ran on the workers: 4 batches of 4 tracks, each worker built it at most once
    runs = _network_runs(before, after, "musicnn")
    assert sum(batches for _, batches in runs) == 4, runs
    assert all(builds == (batches > 0) for builds, batches in runs), runs
    assert on_dask["parts"] == local["parts"] and len(local["parts"]) == 4  # the same batches

    assert len(local["tracks"]) == 16
    pd.testing.assert_frame_equal(on_dask["tracks"], local["tracks"])
    pd.testing.assert_frame_equal(on_dask["bad_tracks"], local["bad_tracks"])
    assert (
        set(on_dask["spectrograms"])
        == set(local["spectrograms"])
        == set(local["tracks"]["track_id"])
    )
    for key, array in local["spectrograms"].items():
        np.testing.assert_array_equal(on_dask["spectrograms"][key], array)  # same float16 values
    assert on_dask["spectrogram_failures"].empty and local["spectrogram_failures"].empty
    assert set(on_dask["features"]) == set(local["features"])
    for key, (values, error) in local["features"].items():
        assert error == "" or error is None, error
        np.testing.assert_array_equal(on_dask["features"][key][0], values)
    np.testing.assert_array_equal(on_dask["embeddings"], local["embeddings"])
    pd.testing.assert_frame_equal(on_dask["cv"], local["cv"])


def _network_runs(before: dict, after: dict, backbone: str) -> list[tuple[int, int]]:
    """(networks built, batches run) of ``backbone`` by each worker between two
    ``worker_network_counts`` answers (a worker missing from ``before`` started since)."""
    empty: dict = {"builds": {}, "batches": {}}
    return [
        tuple(
            counts[kind].get(backbone, 0) - before.get(worker, empty)[kind].get(backbone, 0)
            for kind in ("builds", "batches")
        )
        for worker, counts in after.items()
    ]


def _tiny_job(spectrograms: dict[str, np.ndarray], seed: int | None = 3) -> CutLevelFeatureJob:
    weights = WeightsChoice("random", seed=seed)
    return CutLevelFeatureJob(
        key=f"tinynet__random-seed{seed}__img-bilinear",
        description={"backbone": "tinynet"},
        track_ids=list(spectrograms),
        spectrograms={t: (lambda s=s: s) for t, s in spectrograms.items()},
        extractor=CutLevelFeatureExtractor(TINY, weights, TINY.cut_levels),
        batch_size=4,
        timing_runs=1,
    )


def _job_output(job: CutLevelFeatureJob) -> tuple[dict, object]:
    """The job's batches by their tracks (in batch order), and its manifest."""
    *batches, manifest = run_job(job, set())
    assert all(isinstance(batch, FeatureBatch) for batch in batches)
    return {tuple(batch.item_ids): batch for batch in batches}, manifest


def test_a_cut_level_job_runs_its_network_on_the_workers_in_the_local_batches(cluster):
    """A spectrogram backbone (a tiny one, random weights seeded) on the cluster: the workers
    receive the spectrograms (they cannot reach the store) and build the network once each;
    the batches, their features and the manifest equal the local run's."""
    _wait_for_two_workers(cluster)
    rng = np.random.default_rng(5)
    spectrograms = {}
    for i in range(11):
        spec = rng.normal(-40, 15, (64, 80)).astype(np.float32)
        # float16-exact, as from the spectrogram store, or not (they travel as float32 then)
        spectrograms[f"7{i:03d}"] = spec.astype(np.float16).astype(np.float32) if i % 2 else spec
    spectrograms["7002"] = np.full((64, 80), np.nan, dtype=np.float32)  # fails on the driver

    local, local_manifest = _job_output(_tiny_job(spectrograms))
    with parallel.using(_dask(cluster)):
        client = parallel.dask_client()
        before = client.run(worker_network_counts)
        on_dask, dask_manifest = _job_output(_tiny_job(spectrograms))
        after = client.run(worker_network_counts)
        threads = client.run(tensorflow_threads)
        # a set-up error on a worker ends the run with its message, the worker named
        with pytest.raises(BackboneWeightsError, match=r"^worker .+:\d+: .*random_seed"):
            list(run_job(_tiny_job(spectrograms, seed=None), set()))

    # the local batches skip the bad track: 4 + 4 + 2 tracks, and so do the cluster's
    assert list(local) == [("7000", "7001", "7003", "7004"), ("7005", "7006", "7007", "7008"),
                           ("7009", "7010")]  # fmt: skip
    assert set(on_dask) == set(local)
    for ids, batch in local.items():
        assert on_dask[ids].digests == batch.digests
        assert set(on_dask[ids].features) == {"pool", "dense"}
        for cut, values in batch.features.items():
            np.testing.assert_array_equal(on_dask[ids].features[cut], values)
    assert list(dask_manifest.items.items()) == list(local_manifest.items.items())
    assert dask_manifest.failures == local_manifest.failures
    assert "NaN" in dask_manifest.failures["7002"]
    assert set(dask_manifest.measurements) == set(local_manifest.measurements)
    assert all(ms > 0 for ms in dask_manifest.measurements["extract_ms_per_image"].values())
    # 3 batches on 2 workers, each built the network at most once: one reused it
    runs = _network_runs(before, after, "tinynet")
    assert sum(batches for _, batches in runs) == 3, runs
    assert all(builds == (batches > 0) for builds, batches in runs), runs
    # TensorFlow in each single-threaded worker uses one thread, not every core
    assert set(threads.values()) == {(1, 1)}, threads


@pytest.fixture(scope="module")
def tracks(collection: Path) -> pd.DataFrame:
    return run_ingestion(
        AudioCollectionDataset(source="folder", folder=str(collection)),
        {**INGESTION, "folder": str(collection)},
    ).load("tracks")


def test_a_musicnn_batch_that_kills_its_workers_costs_only_the_guilty_track(
    cluster, tracks, monkeypatch
):
    """A decoder crash takes the whole batch's task down; its tracks then run alone, and only
    the one that crashes alone too is reported."""
    _wait_for_two_workers(cluster)
    ids = tracks["track_id"].tolist()[:6]
    guilty = ids[1]
    # the first batch (3 tracks) and the guilty track alone kill their workers
    monkeypatch.setenv(parallel.CRASH_KEYS_ENV, f"{ids[0]}..{ids[2]},{guilty}..{guilty}")
    spec = get_backbone("musicnn")
    job = AudioEmbeddingJob(
        key="musicnn-crash",
        description={"backbone": "musicnn"},
        track_ids=ids,
        paths=dict(zip(tracks["track_id"], tracks["path"], strict=True)),
        extractor=AudioEmbeddingExtractor(
            spec, WeightsChoice("msd"), ("penultimate",), AudioWindow(duration_s=SECONDS)
        ),
        batch_size=3,
        timing_runs=1,
    )
    with parallel.using(_dask(cluster)):
        *batches, manifest = run_job(job, set())

    assert sorted(tuple(batch.item_ids) for batch in batches) == sorted(
        [(ids[0],), (ids[2],), tuple(ids[3:])]
    )
    assert manifest.failures == {guilty: f"worker crashed (killed {ALLOWED_FAILURES + 1} workers)"}
    assert list(manifest.items) == [t for t in ids if t != guilty]
    assert all(
        batch.features["penultimate"].shape == (len(batch.item_ids), 200) for batch in batches
    )


def test_a_worker_killed_mid_run_loses_no_track(cluster):
    _wait_for_two_workers(cluster)
    keys = [f"track{i}" for i in range(16)]
    tasks = [(key, (key,)) for key in keys]
    killed: list[int] = []
    results: dict = {}
    with parallel.using(_dask(cluster)):
        client = parallel.dask_client()
        pids = client.run(os.getpid)
        for key, result in parallel.run_tasks(slow_echo, tasks, None):
            results[key] = result
            if not killed:  # the other worker is in the middle of a task now
                victim = next(p for p in pids.values() if p != result[1])
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
        after = client.run(os.getpid)
    assert killed and killed[0] not in after.values()  # it died and was replaced by its nanny
    assert set(results) == set(keys)
    assert all(results[key] == (key, results[key][1]) for key in results)  # no TaskFailure


def test_a_track_that_kills_every_worker_is_reported_and_the_others_complete(
    cluster, tracks, tmp_path, monkeypatch
):
    _wait_for_two_workers(cluster)
    guilty = tracks["track_id"].iloc[3]
    monkeypatch.setenv(parallel.CRASH_KEYS_ENV, guilty)
    catalog = spectrogram_catalog(tracks, tmp_path / "spectrograms", SPECTROGRAM)
    with parallel.using(_dask(cluster)):
        SequentialRunner().run(spectrogram_pipeline(), catalog)

    stored = catalog.load("log_mel_spectrograms")
    assert set(stored) == set(tracks["track_id"]) - {guilty}
    bad = catalog.load("bad_tracks_spectrogram")
    assert bad["track_id"].tolist() == [guilty]
    assert bad["reason"].iloc[0] == f"worker crashed (killed {ALLOWED_FAILURES + 1} workers)"


class _Catalog(dict):
    """What the hook uses of a Kedro catalog: ``in`` and ``load``."""

    def load(self, name):
        return self[name].load()


@pytest.mark.parametrize("end", ["after_pipeline_run", "on_pipeline_error"])
def test_the_run_hook_configures_the_runtime_and_stops_the_cluster(end):
    import psutil

    hook = RuntimeHook()
    runtime = {"executor": "dask", "n_workers": 1, "dashboard": None}
    catalog = {"params:runtime": MemoryDataset(runtime)}
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    try:
        hook.before_pipeline_run(catalog=_Catalog(catalog))
        assert parallel.current_runtime() == parallel.Runtime(**runtime)
        assert parallel._client is None  # nothing starts before a task needs it
        assert dict(parallel.run_tasks(os.getpid, [("a", ())], None))["a"] != os.getpid()
        client, cluster = parallel._client, parallel._cluster
        assert len(cluster.workers) == 1
        # the worker and its nanny; not multiprocessing's resource tracker, which stays
        from multiprocessing.resource_tracker import _resource_tracker

        before.add(_resource_tracker._pid)
        started = [p for p in me.children(recursive=True) if p.pid not in before]
        assert started

        getattr(hook, end)()  # the run ends, or fails

        assert (parallel._client, parallel._cluster) == (None, None)
        assert client.status == "closed" and cluster.status.name == "closed"
        _, alive = psutil.wait_procs(started, timeout=30)
        assert alive == [], [p.cmdline() for p in alive]
    finally:
        parallel.configure(None)


def test_an_unreachable_scheduler_stops_the_run_with_the_parameter_named(unused_port):
    import click
    import dask

    hook = RuntimeHook()
    address = f"tcp://127.0.0.1:{unused_port}"
    catalog = {"params:runtime": MemoryDataset({"executor": "dask", "address": address})}

    try:
        with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
            with pytest.raises(click.ClickException, match=f"runtime.address={address}: no Dask"):
                hook.before_pipeline_run(catalog=_Catalog(catalog))
    finally:
        hook.on_pipeline_error()
        parallel.configure(None)
