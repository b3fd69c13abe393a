"""Shared test set-up."""

from __future__ import annotations

import os

import pytest


def pytest_report_header(config):
    """Which arithmetic this run sees: float results differ in the last bits between
    processors (tests/helpers/numeric.py), and ``make test-numeric`` caps oneDNN's choice."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "")
    except OSError:
        pass
    present = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f" {f}" in flags]
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "none")
    header = f"processor: {', '.join(present) or 'unknown'}; oneDNN ISA cap: {cap}"
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
        from threadpoolctl import threadpool_info

        numpy_simd = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
        blas = sorted(
            {i.get("architecture", "?") for i in threadpool_info() if i["user_api"] == "blas"}
        )
        header += (
            f"; numpy SIMD: {' '.join(numpy_simd) or 'baseline'}; BLAS core: {', '.join(blas)}"
        )
    except ImportError:
        pass
    return header


# Variables that a test's imports or calls write into this process's environment, and that the
# commands later tests start would inherit: restored after every test. KEDRO_LOGGING_CONFIG is
# set by importing music_genre.commands.predict (its quiet logging); a packaged `python -m
# music_genre` run started later then logged no INFO line at all.
_PROCESS_ENV = (
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_TRACKING_URI",
    "KEDRO_LOGGING_CONFIG",
)


_ENV_AT_START: dict[str, str | None] = {}


def _restore_process_env(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_configure(config):
    # before collection: importing the test modules (predict_cli) already sets some of them
    _ENV_AT_START.update({name: os.environ.get(name) for name in _PROCESS_ENV})


def pytest_collection_finish(session):
    _restore_process_env(_ENV_AT_START)


@pytest.fixture(autouse=True)
def _isolated_mlflow_state():
    """Tests that log to their own MLflow store must not leak its experiment into the next
    test: ``mlflow.set_experiment`` writes MLFLOW_EXPERIMENT_ID into the process environment
    and keeps an active experiment, which then points at a store that no longer exists; the
    other variables of ``_PROCESS_ENV`` are restored too."""
    saved = {name: os.environ.get(name) for name in _PROCESS_ENV}
    yield
    import mlflow
    import mlflow.tracking.fluent as fluent

    while mlflow.active_run():
        mlflow.end_run()
    fluent._active_experiment_id = None
    _restore_process_env(saved)


# -- processes and ports left behind --------------------------------------------------------
# Every process a test starts inherits this variable (tests pass {**os.environ, ...} on): a
# process that was orphaned (its parent killed, it re-parented to init) is still found by it.
SESSION_MARK = "MUSIC_GENRE_TEST_SESSION"


def _shut_down_shared_pools() -> set[int]:
    """Stop what the project keeps alive on purpose between stages, through its owners' own
    shutdown calls: the Dask cluster of ``music_genre.infra.parallel`` and loky's reusable process
    pool (run_tasks and joblib.Parallel share it). Returns the pids of the resource trackers of
    loky and of multiprocessing: one helper process each, started with the first pool or shared
    object, which lives as long as pytest (stopping it early makes joblib's exit-time clean-up
    start a new one). Whatever else is still alive after this was left behind by a test."""
    import sys

    if "music_genre.infra.parallel" in sys.modules:
        sys.modules["music_genre.infra.parallel"].shutdown()
    if "joblib.externals.loky.reusable_executor" in sys.modules:
        executor = sys.modules["joblib.externals.loky.reusable_executor"]._executor
        if executor is not None:
            executor.shutdown(wait=True)
    trackers = set()
    for name in (
        "joblib.externals.loky.backend.resource_tracker",
        "multiprocessing.resource_tracker",
    ):
        if name in sys.modules:
            pid = getattr(sys.modules[name]._resource_tracker, "_pid", None)
            if pid is not None:
                trackers.add(pid)
    return trackers


def _describe(process) -> str:
    import psutil

    try:
        command = " ".join(process.cmdline()) or process.name()
    except psutil.Error:
        command = "?"
    return f"pid {process.pid}: {command[:300]}"


def _session_processes(token: str, excluded: set[int]) -> list:
    """Live processes of this test session: descendants of pytest, and processes that carry
    this session's mark, except those of ``excluded`` (there before the first test, and
    the resource trackers)."""
    import psutil

    me = psutil.Process()
    found = {p.pid: p for p in me.children(recursive=True)}
    for process in psutil.process_iter():
        if process.pid in found or process.pid == me.pid:
            continue
        try:
            if process.environ().get(SESSION_MARK) == token:
                found[process.pid] = process
        except psutil.Error:  # gone meanwhile, or another user's
            continue
    alive = []
    for pid, process in found.items():
        try:
            if pid not in excluded and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            continue
    return alive


def _listening(processes) -> list[str]:
    import psutil

    ports = []
    for process in processes:
        try:
            connections = process.net_connections(kind="inet")
        except psutil.Error:
            continue
        ports += [
            f"{c.laddr.ip}:{c.laddr.port} (pid {process.pid})"
            for c in connections
            if c.status == psutil.CONN_LISTEN
        ]
    return ports


@pytest.fixture(scope="session", autouse=True)
def _no_process_or_port_left_behind():
    """Fails the session (an error at the last test's teardown) when, after the shared pools
    were shut down, a process that a test started is still running, or this process tree still
    listens on a TCP port; the message names the leftover command lines."""
    import uuid

    import psutil

    token = uuid.uuid4().hex
    os.environ[SESSION_MARK] = token
    me = psutil.Process()
    started_before = {p.pid for p in me.children(recursive=True)}
    yield
    trackers = _shut_down_shared_pools()
    leftovers = _session_processes(token, started_before | trackers)
    _, leftovers = psutil.wait_procs(leftovers, timeout=10)  # those that are exiting anyway
    ports = _listening([me, *leftovers])
    if leftovers or ports:
        lines = [_describe(p) for p in leftovers] + [f"listening on {p}" for p in ports]
        for process in leftovers:  # reported; not left running on the machine either
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        pytest.fail(
            "the tests left processes or listening ports behind (stop them in the test, e.g. "
            "tests.helpers.processes.run_command / stop_process_group):\n  " + "\n  ".join(lines),
            pytrace=False,
        )


@pytest.fixture
def unused_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (a refused connection, or a server's port)."""
    from tests.helpers.processes import free_port

    return free_port()


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A throwaway MLflow store (its artifacts, too, under tmp_path) with an active experiment;
    yields the mlflow module."""
    import mlflow
    from mlflow.tracking import fluent

    previous = mlflow.get_tracking_uri()
    monkeypatch.setattr(fluent, "_active_experiment_id", None)  # restored afterwards
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment(
        "test", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    mlflow.set_experiment(experiment_id=experiment)
    yield mlflow
    mlflow.set_tracking_uri(previous)
