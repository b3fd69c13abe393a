"""Shared test set-up."""

from __future__ import annotations

import os

import pytest

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
