"""The per-track worker pool: crashed workers, exceptions, order-free results, thread limits."""

from __future__ import annotations

import os

import numpy as np
import pytest

from music_genre.infra.parallel import CRASH_KEYS_ENV, TaskFailure, run_isolated_many, run_tasks


def square(value: int) -> int:
    return value * value


def exit_on_three(value: int) -> int:
    if value == 3:
        os._exit(7)  # a worker that dies without a signal (e.g. a library calling exit)
    return value * value


def raise_on_two(value: int) -> int:
    if value == 2:
        raise ValueError("two is not allowed")
    return value


def blas_threads(_: int) -> int:
    from threadpoolctl import threadpool_info

    return max((pool["num_threads"] for pool in threadpool_info()), default=1)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_task_gives_its_result_once(workers):
    tasks = [(f"k{i}", (i,)) for i in range(12)]
    results = dict(run_tasks(square, tasks, workers, window=3))
    assert results == {f"k{i}": i * i for i in range(12)}


def test_a_crashing_task_costs_that_task_only(monkeypatch):
    monkeypatch.setenv(CRASH_KEYS_ENV, "k4")
    tasks = [(f"k{i}", (i,)) for i in range(8)]
    results = list(run_tasks(square, tasks, 2))
    assert sorted(key for key, _ in results) == sorted(f"k{i}" for i in range(8))
    by_key = dict(results)
    assert by_key.pop("k4") == TaskFailure("worker crashed (signal SIGSEGV)")
    assert by_key == {f"k{i}": i * i for i in range(8) if i != 4}


def test_a_worker_that_exits_is_reported_with_its_exit_code():
    results = dict(run_tasks(exit_on_three, [(str(i), (i,)) for i in range(6)], 2))
    assert results.pop("3") == TaskFailure("worker crashed (exit code 7)")
    assert results == {str(i): i * i for i in range(6) if i != 3}


def test_an_exception_becomes_the_tasks_failure():
    results = dict(run_tasks(raise_on_two, [(str(i), (i,)) for i in range(4)], 1))
    assert results["2"] == TaskFailure("ValueError: two is not allowed")
    assert [results[str(i)] for i in (0, 1, 3)] == [0, 1, 3]


def test_tasks_run_with_single_threaded_blas_whatever_the_worker_count():
    # Multi-threaded BLAS changes the last bits of a matrix product: see music_genre.infra.parallel.
    for workers in (1, 2):
        assert set(dict(run_tasks(blas_threads, [("a", (0,)), ("b", (1,))], workers)).values()) == {
            1
        }
    assert dict(run_isolated_many(blas_threads, [("a", (0,))], 1)) == {"a": 1}


def test_no_tasks_starts_nothing(monkeypatch):
    import joblib.executor
    import psutil

    from music_genre.infra import parallel

    def started(*args, **kwargs):
        raise AssertionError("no task, yet a worker pool or cluster was asked for")

    monkeypatch.setattr(joblib.executor, "get_memmapping_executor", started)
    monkeypatch.setattr(parallel, "dask_client", started)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    assert list(run_tasks(square, [], 2)) == []
    assert list(run_tasks(square, iter(()), 2)) == []
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after - before == set()


def test_single_threaded_mel_spectrogram_is_what_every_worker_count_computes():
    from threadpoolctl import threadpool_limits

    from music_genre.audio.spectrograms import STUDY_SETTINGS, log_mel_spectrogram

    signal = np.random.default_rng(0).standard_normal(22050 * 3).astype(np.float32)
    with threadpool_limits(limits=1):
        reference = log_mel_spectrogram(signal, STUDY_SETTINGS)
    tasks = [(str(i), (signal, STUDY_SETTINGS)) for i in range(2)]
    for workers in (1, 2):
        for _, spec in run_tasks(log_mel_spectrogram, tasks, workers):
            assert np.array_equal(spec, reference)


def test_joblib_parallel_runs_after_the_pool_of_run_tasks():
    # The grid search's joblib.Parallel(n_jobs=2) after a per-track stage once failed ("no
    # attribute '_temp_folder_manager'") when both shared loky's process-wide executor.
    from joblib import Parallel, delayed

    from music_genre.infra.parallel import joblib_workers_for

    assert dict(run_tasks(square, [("a", (3,))], 2)) == {"a": 9}
    with joblib_workers_for():
        assert Parallel(n_jobs=2)(delayed(square)(v) for v in range(4)) == [0, 1, 4, 9]


def _pool_workers() -> set[int]:
    """This process's children other than the resource trackers (which live as long as it)."""
    import psutil

    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if "resource_tracker" not in " ".join(p.cmdline())
    }


def test_pools_end_with_their_stage_and_grid_searches_still_run_after():
    # Pools that outlived their stage kept a ParallelRunner worker waiting 300 s at its exit.
    from joblib import Parallel, delayed

    from music_genre.infra.parallel import joblib_workers_for

    before = _pool_workers()  # e.g. joblib's workers left by another test module
    for _ in range(2):  # a stage, a grid search, and again: each starts afresh
        assert dict(run_tasks(square, [(str(i), (i,)) for i in range(4)], 2)) == {
            str(i): i * i for i in range(4)
        }
        assert _pool_workers() <= before
        with joblib_workers_for():
            with joblib_workers_for():  # nested/concurrent blocks: the last one out stops them
                assert Parallel(n_jobs=2)(delayed(square)(v) for v in range(4)) == [0, 1, 4, 9]
            assert Parallel(n_jobs=2)(delayed(square)(v) for v in range(3)) == [0, 1, 4]
        assert _pool_workers() <= before


def test_a_consumer_that_stops_early_leaves_no_worker_behind():
    before = _pool_workers()
    results = run_tasks(square, [(str(i), (i,)) for i in range(20)], 2, window=4)
    next(results)
    results.close()
    assert _pool_workers() <= before
