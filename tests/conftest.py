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
    return f"processor: {', '.join(present) or 'unknown'}; oneDNN ISA cap: {cap}"


_MLFLOW_ENV = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def _isolated_mlflow_state():
    """Tests that log to their own MLflow store must not leak its experiment into the next
    test: ``mlflow.set_experiment`` writes MLFLOW_EXPERIMENT_ID into the process environment
    and keeps an active experiment, which then points at a store that no longer exists."""
    saved = {name: os.environ.get(name) for name in _MLFLOW_ENV}
    yield
    import mlflow
    import mlflow.tracking.fluent as fluent

    while mlflow.active_run():
        mlflow.end_run()
    fluent._active_experiment_id = None
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
