# Over 400 lines: the worker pools and the Dask runtime share one task and failure model.
"""Per-track work in worker processes: one crashing worker costs one track, never the run, and
the result of a track does not depend on how many workers computed it.

Every per-track stage (ingestion probing, spectrograms, handcrafted features, musicnn's audio
front end) hands its tasks to :func:`run_tasks`, and so do the transfer networks' batches on Dask
(``music_genre.pipelines.transfer.extraction``). Why each rule:

- **Crashes.** A segfault in a decoder or in compiled code, ``os._exit`` or the kernel's OOM
  killer takes its worker process down. The pool is then broken and every unfinished task fails
  with it, the guilty one and the innocent ones alike. Each unfinished task is therefore run
  once more, alone in a fresh process: the innocent ones succeed, and a task that crashes a
  worker a second time is given up, as a :class:`TaskFailure` with the reason
  ``worker crashed (signal SIGSEGV)`` that the stage writes into its bad-tracks report.
- **Determinism.** Multi-threaded BLAS splits a matrix product differently for another thread
  count, which changes the last bits of a mel spectrogram on some processors; a worker process
  of a pool of two used to run single-threaded BLAS while one worker (the parent) ran it
  multi-threaded. Every task now runs with the numerical libraries' thread pools limited to one
  thread (:func:`threadpoolctl.threadpool_limits`), in whatever process, so 1, 2 or N workers give
  bit-identical results.
- **Memory.** At most ``window`` tasks are submitted ahead of the consumer, so finished results
  never pile up when the consumer (writing to the store) is slower than the workers.

- **Lifetime.** Each call of :func:`run_tasks` (a stage) has a loky process pool of its own,
  shut down - its workers joined - when the stage's last result has been read (or the consumer
  stops early). A pool kept alive for later stages (loky's process-wide reusable executor, as
  before) outlived the stage: inside a ``ParallelRunner`` worker the node's process then waited
  at its exit for the idle workers' 300-s timeout, and left joblib's memmapping folders in
  /dev/shm; under ``ThreadRunner`` two stages running at once resized one shared pool under each
  other. A stage now pays its workers' start-up (a few seconds of imports) once. The grid
  searches' ``n_jobs`` workers (joblib's process-wide executor, which this module does not
  share) are stopped the same way when the last grid search of the process ends
  (:func:`grid_search_backend`).

**Where the work runs** is chosen here and nowhere else (``runtime`` parameters, see
:func:`configure`): ``executor: local`` is the pool above; ``executor: dask`` sends the same
tasks, through the same single-thread-BLAS wrapper, to a Dask cluster (an existing scheduler at
``runtime.address``, or a ``distributed.LocalCluster`` started on first use and stopped by
:func:`shutdown`). On Dask a worker that dies mid-task is replaced by its nanny and the scheduler
reruns its tasks elsewhere; a task that kills every worker it reaches
(``distributed.scheduler.allowed-failures`` + 1 of them) ends as ``KilledWorker``, reported as
:class:`TaskFailure` ``worker crashed (killed N workers)``. :func:`grid_search_backend` moves
scikit-learn's ``GridSearchCV`` onto the same cluster through joblib's Dask backend.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from itertools import chain
from typing import Any

from music_genre.errors import SetupError

logger = logging.getLogger(__name__)

# Test-only fault injection: task keys listed here (comma-separated) kill their worker with
# SIGSEGV, so the tests can prove that a crashing track costs one track and not the run.
CRASH_KEYS_ENV = "MUSIC_GENRE_CRASH_KEYS"


@dataclass(frozen=True)
class TaskFailure:
    """A task that produced no result, and why (a crash, or an exception the task let out)."""

    reason: str


def resolve_workers(value: int | None) -> int:
    """``None`` or -1 -> every core; otherwise the count itself (validated by the schemas)."""
    if value is None or value == -1:
        return os.cpu_count() or 1
    return int(value)


def _call_with_one_thread(function: Callable[..., Any], args: tuple, crash: bool) -> Any:
    """What runs in a worker: the task, with BLAS/OpenMP limited to one thread (see above)."""
    if crash:
        os.kill(os.getpid(), signal.SIGSEGV)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        try:
            return function(*args)
        except Exception as exc:  # noqa: BLE001 - becomes this task's reported failure
            return TaskFailure(f"{type(exc).__name__}: {exc}")


def _crash_keys() -> frozenset[str]:
    return frozenset(k for k in os.environ.get(CRASH_KEYS_ENV, "").split(",") if k)


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"worker crashed (signal {signal.Signals(-exitcode).name})"
        except ValueError:
            return f"worker crashed (signal {-exitcode})"
    return f"worker crashed (exit code {exitcode})"


def _isolated_target(
    connection: Any, function: Callable[..., Any], args: tuple, crash: bool
) -> None:
    connection.send(_call_with_one_thread(function, args, crash))
    connection.close()


def _start_isolated(context: Any, function: Callable[..., Any], args: tuple, crash: bool) -> Any:
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_isolated_target, args=(sender, function, args, crash))
    process.start()
    sender.close()
    return process, receiver


def _finish_isolated(process: Any, receiver: Any) -> Any:
    try:
        result = receiver.recv() if receiver.poll() else None
    except EOFError:  # the process died before sending anything
        result = None
    process.join()
    receiver.close()
    if process.exitcode != 0 or result is None:
        return TaskFailure(_exit_reason(process.exitcode))
    return result


def run_isolated_many(
    function: Callable[..., Any],
    tasks: Sequence[tuple[str, tuple]],
    workers: int,
    crash_keys: frozenset[str] = frozenset(),
) -> Iterator[tuple[str, Any]]:
    """Each task alone in a fresh process, ``workers`` at a time; a crash becomes a
    :class:`TaskFailure` naming the signal or exit code."""
    from multiprocessing.connection import wait as wait_ready

    context = multiprocessing.get_context("spawn")
    pending = list(reversed(tasks))
    running: dict[Any, tuple[str, Any, Any]] = {}
    try:
        while pending or running:
            while pending and len(running) < max(1, workers):
                key, args = pending.pop()
                process, receiver = _start_isolated(context, function, args, key in crash_keys)
                running[process.sentinel] = (key, process, receiver)
            # a result arrives before its process ends; reading it lets a large one finish
            ready = wait_ready([*running, *(r for _, _, r in running.values())])
            for sentinel, (key, process, receiver) in list(running.items()):
                if sentinel in ready or receiver in ready:
                    del running[sentinel]
                    yield key, _finish_isolated(process, receiver)
    finally:  # the consumer stopped early: no process outlives the call
        for _, process, receiver in running.values():
            process.kill()
            process.join()
            receiver.close()


def run_tasks(
    function: Callable[..., Any],
    tasks: Iterable[tuple[str, tuple]],
    workers: int | None,
    window: int | None = None,
) -> Iterator[tuple[str, Any]]:
    """``function(*args)`` for every ``(key, args)`` of ``tasks`` in worker processes; yields
    ``(key, result)`` in completion order. ``result`` is what the function returned, or a
    :class:`TaskFailure` (the function raised, or its worker crashed twice).

    ``workers``: processes (``None``/-1: every core). ``window``: tasks submitted ahead of the
    consumer (default 2 per worker). Results equal those of a single worker, bit for bit.
    With ``runtime.executor: dask`` the cluster's size replaces ``workers`` (see
    :func:`_run_on_dask`), and ``tasks`` (a generator, say) is read only as tasks are
    submitted, so tasks that carry their data hold just a window of it in memory; the local
    pool reads them all first.
    """
    remaining = iter(tasks)
    first = next(remaining, None)
    if first is None:
        return
    client = dask_client()
    if client is not None:
        yield from _run_on_dask(client, function, chain([first], remaining), window)
        return
    todo = [first, *remaining]
    from joblib.externals.loky.process_executor import BrokenProcessPool

    n_workers = max(1, min(resolve_workers(workers), len(todo)))
    # tasks submitted ahead: enough to keep every worker busy while the consumer writes, few
    # enough that a crash sends only a handful of innocent tasks to the isolated retry
    window = max(n_workers, window or 2 * n_workers)
    crash_keys = _crash_keys()
    pending = list(reversed(todo))  # popped from the end: submission keeps the given order
    while pending:
        # this stage's own pool (see "Lifetime" above), shut down before run_tasks returns
        executor = _stage_pool(n_workers)
        in_flight: dict[Future, tuple[str, tuple]] = {}
        suspects: list[tuple[str, tuple]] = []
        finished = False
        try:
            while pending or in_flight:
                while pending and len(in_flight) < window:
                    key, args = pending.pop()
                    future = executor.submit(
                        _call_with_one_thread, function, args, key in crash_keys
                    )
                    in_flight[future] = (key, args)
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    key, args = in_flight.pop(future)
                    error = future.exception()
                    if isinstance(error, BrokenProcessPool):
                        suspects.append((key, args))
                    elif error is not None:  # e.g. a result that cannot be pickled
                        yield key, TaskFailure(f"{type(error).__name__}: {error}")
                    else:
                        yield key, future.result()
                if suspects:
                    raise BrokenProcessPool("a worker died")
            finished = True
        except BrokenProcessPool:
            # Every unfinished task went down with the pool: retry each alone in a fresh
            # process, which also tells the guilty task from the innocent ones.
            suspects.extend(in_flight.values())
            for future in in_flight:
                future.cancel()
            in_flight.clear()
            _stop_pool(executor, finished=False)
            logger.warning(
                "A worker process died; running the %d unfinished task(s) again, each alone "
                "in a fresh process",
                len(suspects),
            )
            for key, result in run_isolated_many(function, suspects, n_workers, crash_keys):
                if isinstance(result, TaskFailure) and result.reason.startswith("worker crashed"):
                    logger.warning("Task %s crashed its worker twice: %s", key, result.reason)
                yield key, result
        finally:
            # normal end: the workers are idle and exit at once; the consumer stopped early or
            # an error: what still runs is abandoned, its workers killed
            for future in in_flight:
                future.cancel()
            _stop_pool(executor, finished=finished)


def _stage_pool(n_workers: int) -> Any:
    """A loky process pool for one stage: loky's workers, like joblib's (cloudpickled tasks, a
    worker's death seen as ``BrokenProcessPool``), but not the process-wide reusable executor,
    so nothing else resizes or keeps it. Workers start on the first submitted task."""
    from joblib.externals.loky.process_executor import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=n_workers)


def _stop_pool(executor: Any, finished: bool) -> None:
    """Join the stage's workers (idle after a finished stage), or kill them (an abandoned or
    broken one); a second call is harmless."""
    executor.shutdown(wait=True, kill_workers=not finished)


# --- where the work runs: the runtime parameters ---------------------------------------------
class SchedulerUnreachableError(SetupError, ConnectionError):
    """``runtime.address`` names no reachable Dask scheduler (the message says what to do)."""


@dataclass(frozen=True)
class Runtime:
    """``runtime`` parameters (schema: ``music_genre.config.RuntimeParams``)."""

    executor: str = "local"  # local | dask
    address: str | None = None  # dask: tcp://host:8786, or None for a LocalCluster of this run
    n_workers: int | None = None  # LocalCluster worker processes (None: one per core)
    threads_per_worker: int = 1
    dashboard: str | None = ":8787"  # LocalCluster dashboard address; None: no dashboard
    mixed_precision: bool = False  # Keras mixed_float16 on a GPU (music_genre.infra.accelerator)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> Runtime:
        return cls(**dict(params or {}))


_runtime = Runtime()
_client: Any = None  # distributed.Client, created on first use
_cluster: Any = None  # the LocalCluster this process started (address: null), if any


def configure(params: Mapping[str, Any] | None) -> Runtime:
    """Choose where :func:`run_tasks` and the grid searches run (``params:runtime``; ``None``:
    local). Nothing starts yet: a cluster is connected or started by the first task."""
    global _runtime
    runtime = Runtime.from_params(params)
    if runtime != _runtime:
        shutdown()
    _runtime = runtime
    return runtime


def current_runtime() -> Runtime:
    return _runtime


def dask_client() -> Any:
    """The Dask client of the configured runtime (connected or started now if needed), or
    ``None`` for ``executor: local``."""
    global _client, _cluster
    if _runtime.executor != "dask":
        return None
    if _client is not None:
        return _client
    from distributed import Client, LocalCluster

    if _runtime.address:
        try:
            _client = Client(_runtime.address)
        except (OSError, TimeoutError) as exc:
            raise SchedulerUnreachableError(
                f"runtime.address={_runtime.address}: no Dask scheduler answered ({exc}). "
                "Start one (`dask scheduler`, see docs/dask.md), fix the "
                "address, or use runtime.address=null for a LocalCluster of this run."
            ) from None
        where = f"the scheduler at {_runtime.address}"
    else:
        import dask

        # One task per worker thread at a time: when a worker dies, Dask counts a failure
        # against every task assigned to it, so a task merely queued behind a crashing one
        # could otherwise be given up as "killed N workers" too.
        with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
            _cluster = LocalCluster(
                n_workers=_runtime.n_workers or os.cpu_count() or 1,
                threads_per_worker=_runtime.threads_per_worker,
                processes=True,
                dashboard_address=_runtime.dashboard,
            )
        _client = Client(_cluster)
        where = f"a LocalCluster of this run ({len(_cluster.workers)} workers)"
    link = _client.dashboard_link if _runtime.address or _runtime.dashboard else None
    logger.info("Parallel work runs on Dask, %s; dashboard: %s", where, link or "none")
    return _client


def shutdown() -> None:
    """Disconnect from the cluster, and stop it if this process started it (a LocalCluster)."""
    global _client, _cluster
    client, cluster, _client, _cluster = _client, _cluster, None, None
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()
        logger.info("Stopped the run's Dask LocalCluster")


@contextmanager
def using(params: Mapping[str, Any] | None) -> Iterator[Runtime]:
    """``configure(params)`` for a block (scripts, tests), restoring the previous runtime."""
    previous = _runtime
    runtime = configure(params)
    try:
        yield runtime
    finally:
        shutdown()
        configure(asdict(previous))


def cluster_threads(client: Any) -> int:
    return max(1, sum(client.nthreads().values()))


def grid_search_backend() -> AbstractContextManager[Any]:
    """Around ``GridSearchCV.fit``: joblib's Dask backend when the runtime is Dask (the grid
    points and folds run on the cluster), else ``n_jobs`` processes here, stopped when the
    block ends (:func:`joblib_workers_for`)."""
    client = dask_client()
    if client is None:
        return joblib_workers_for()
    from joblib import parallel_config

    return parallel_config(backend="dask", n_jobs=-1, wait_for_workers_timeout=60)


_joblib_lock = threading.Lock()
_joblib_users = 0


@contextmanager
def joblib_workers_for() -> Iterator[None]:
    """A block whose ``joblib.Parallel`` (scikit-learn's ``n_jobs``) may start worker
    processes: when the last such block of this process ends, joblib's process-wide loky
    executor is shut down, its workers joined and its memmapping folders in /dev/shm removed.
    joblib keeps that executor for reuse with a 300-s idle timeout, which is what made a
    ``ParallelRunner`` worker wait five minutes at its exit. Counted, so that blocks running at
    once (``ThreadRunner``) share the executor and the last one out stops it."""
    global _joblib_users
    with _joblib_lock:
        _joblib_users += 1
    try:
        yield
    finally:
        with _joblib_lock:  # held while stopping: a new block waits and then starts afresh
            _joblib_users -= 1
            if _joblib_users == 0:
                stop_joblib_workers()


def stop_joblib_workers() -> None:
    """Shut down joblib's process-wide loky executor, if one was started (none: nothing)."""
    from joblib.externals.loky import reusable_executor

    # the module-level reference is the only handle: get_reusable_executor() would start one
    executor = getattr(reusable_executor, "_executor", None)
    if executor is None:
        return
    if hasattr(executor, "terminate"):  # joblib's MemmappingExecutor: also its temp folders
        executor.terminate(kill_workers=False)
    else:
        executor.shutdown(wait=True)


def _dask_failure(error: BaseException) -> TaskFailure:
    from distributed.scheduler import KilledWorker

    if isinstance(error, KilledWorker):
        return TaskFailure(f"worker crashed (killed {error.allowed_failures + 1} workers)")
    return TaskFailure(f"{type(error).__name__}: {error}")


def _run_on_dask(
    client: Any,
    function: Callable[..., Any],
    tasks: Iterable[tuple[str, tuple]],
    window: int | None,
) -> Iterator[tuple[str, Any]]:
    """:func:`run_tasks` on a Dask cluster. At most ``window`` tasks (at least two per cluster
    thread) are on the cluster at a time, and each result is released as soon as it has been
    yielded, so neither the scheduler nor this process holds more than a window of results."""
    from distributed import as_completed

    crash_keys = _crash_keys()
    window = max(window or 0, 2 * cluster_threads(client))
    run_id = uuid.uuid4().hex[:8]
    name = getattr(function, "__name__", "task")
    remaining = iter(tasks)
    keys: dict[Any, str] = {}
    # results are fetched from the workers in the background as tasks finish, not one
    # round trip per result when the consumer asks for it
    completed = as_completed(with_results=True, raise_errors=False)

    def submit_next() -> None:
        item = next(remaining, None)
        if item is None:
            return
        key, args = item
        future = client.submit(
            _call_with_one_thread,
            function,
            args,
            key in crash_keys,
            key=f"{name}-{run_id}-{key}",
            pure=False,
        )
        keys[future] = key
        completed.add(future)

    for _ in range(window):
        submit_next()
    for future, value in completed:
        key = keys.pop(future)
        if future.status == "error":
            result = _dask_failure(future.exception())
            if result.reason.startswith("worker crashed"):
                logger.warning("Task %s killed its workers: %s", key, result.reason)
        else:
            result = value
        future.release()
        # the next task goes out before the consumer (writing to a store) takes its time
        submit_next()
        yield key, result
