"""Live curves: a Keras training's MLflow child run opens when the training starts, and each
epoch's metrics are logged as the epoch ends, so the UI shows a training in progress.

A child run is opened only under an active run (the one kedro-mlflow opens for ``kedro run``);
without one (a node called on its own, a test) nothing is logged here and the catalog's
:class:`~music_genre.datasets.mlflow_runs.MlflowModelRunsDataset` logs the curves afterwards,
as before. The run is created through the client, not made the active run, so that nothing
else a node logs lands in it.

A run left open by a successful training is finished by the runs dataset, which reuses it
(the record's ``run_id``) for the configuration's params, final metrics, plots and model. A
training that raises ends its run ``FAILED`` at once; :func:`end_open_runs` ends the others
still open when a node or the pipeline fails (:class:`music_genre.hooks.MlflowRunsHook`), so
that no run stays "running" in the UI.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from music_genre.contracts import epoch_metric

logger = logging.getLogger(__name__)

FINISHED, FAILED = "FINISHED", "FAILED"
# the child runs this process opened and did not end yet: run id -> run name
_OPEN: dict[str, str] = {}


def open_run(run_name: str, tags: Mapping[str, Any] | None = None) -> str | None:
    """Open a child run of the active run (``mlflow.parentRunId``, the run name and ``tags``);
    its id, or None when no run is active."""
    import mlflow
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    parent = mlflow.active_run()
    if parent is None:
        return None
    run = MlflowClient().create_run(
        parent.info.experiment_id,
        run_name=run_name,
        tags={
            **{k: str(v) for k, v in (tags or {}).items()},
            MLFLOW_PARENT_RUN_ID: parent.info.run_id,
            MLFLOW_RUN_NAME: run_name,
        },
    )
    _OPEN[run.info.run_id] = run_name
    return run.info.run_id


def log_history(run_id: str, history: Mapping[str, Sequence[Any]], first_epoch: int = 0) -> None:
    """Keras history values (``loss``, ``val_accuracy``, ...: a list per metric) as ``epoch_*``
    metrics at steps ``first_epoch``, ``first_epoch + 1``, ..., in a few batched writes (one
    write per value is slow on SQLite)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    metrics = [
        Metric(epoch_metric(key), float(value), now, first_epoch + step)
        for key, values in history.items()
        for step, value in enumerate(values)
    ]
    client = MlflowClient()
    for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


def log_epoch(run_id: str | None, epoch: int, logs: Mapping[str, Any] | None) -> None:
    """One epoch's Keras metrics as ``epoch_*`` metrics at step ``epoch``, in one write."""
    if run_id is None or not logs:
        return
    log_history(
        run_id, {k: [v] for k, v in logs.items() if hasattr(v, "__float__")}, first_epoch=epoch
    )


def end_run(run_id: str | None, status: str = FINISHED) -> None:
    """End a child run this module opened (no-op for None or one already ended here)."""
    if run_id is None or _OPEN.pop(run_id, None) is None:
        return
    from mlflow.tracking import MlflowClient

    MlflowClient().set_terminated(run_id, status)


def release(run_id: str) -> None:
    """Forget ``run_id``: whoever reused it (the runs dataset) ends it."""
    _OPEN.pop(run_id, None)


def open_runs() -> dict[str, str]:
    """The child runs opened here and not ended yet (run id -> name)."""
    return dict(_OPEN)


def end_open_runs(status: str = FAILED) -> list[str]:
    """End every child run still open with ``status``; their ids. A store that cannot be
    reached must not hide the error that brought us here: it is logged, not raised."""
    ended = []
    for run_id, name in list(_OPEN.items()):
        try:
            end_run(run_id, status)
            ended.append(run_id)
            logger.warning("MLflow run %r (%s) ended %s", name, run_id, status)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            _OPEN.pop(run_id, None)
            logger.warning("Could not end MLflow run %r (%s): %s", name, run_id, exc)
    return ended


def epoch_callback(run_id: str | None) -> Any:
    """A Keras callback that logs each epoch's metrics to ``run_id`` as the epoch ends."""
    import keras

    return keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs=None: log_epoch(run_id, epoch, logs)
    )


@contextmanager
def live_run(run_name: str, tags: Mapping[str, Any] | None = None) -> Iterator[str | None]:
    """A child run for one training (its id, or None without an active run): left open when
    the block succeeds (the runs dataset finishes it), ended ``FAILED`` when it raises."""
    run_id = open_run(run_name, tags)
    try:
        yield run_id
    except BaseException:
        end_run(run_id, FAILED)
        raise
