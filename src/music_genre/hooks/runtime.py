"""Where the run's work happens: ``SetupError`` messages without a traceback
(``SetupErrorHook``), advice on the runner, and the ``runtime`` section (``RuntimeHook``)."""

from __future__ import annotations

import logging
from typing import Any

import click
from kedro.framework.hooks import hook_impl

from music_genre.errors import SetupError

logger = logging.getLogger(__name__)


class SetupErrorHook:
    """A node that stops on a :class:`~music_genre.errors.SetupError` (weights that cannot be
    had offline, a wrong cut level, a missing storage package) ends the run with its message as
    a command-line error: the message names the setting and the fix, and a traceback would
    bury it. Any other error keeps its traceback (it may be a bug)."""

    # trylast: every other hook (MLflow closing its run, the Dask cluster stopping) has seen the
    # error first; on_pipeline_error rather than on_node_error, which Kedro does not call for
    # an error raised while a generator node's output is being consumed.
    @hook_impl(trylast=True)
    def on_pipeline_error(self, error: Exception) -> None:
        if isinstance(error, SetupError):
            raise click.ClickException(str(error)) from None


def runner_advice(runner: Any, executor: str = "local") -> str | None:
    """What the run log says, once, when the run's Kedro runner is a poor fit for this project
    (see the README's "Runners"); ``None`` for SequentialRunner and ThreadRunner.
    ``runner``: Kedro's ``run_params["runner"]``, the runner object's ``str()`` (or its class
    name)."""
    if "ParallelRunner" not in str(runner or ""):
        return None
    advice = (
        "ParallelRunner is a poor fit for this project: its per-track stages (ingestion, "
        "spectrograms, handcrafted features, musicnn decoding) already spread their tracks over "
        "`workers` processes (null: every core), and the grid searches and networks use every "
        "core too, so nodes in parallel processes only compete for the same cores; node hooks "
        "run in those processes, so the slowest-nodes summary stays empty. Use the default "
        "SequentialRunner, or ThreadRunner to overlap nodes (README: Runners)."
    )
    if executor == "dask":
        advice += (
            " With runtime.executor: dask each ParallelRunner process would connect (or start a "
            "LocalCluster) on its own: run it with SequentialRunner or ThreadRunner."
        )
    return advice


class RunnerAdviceHook:
    """Says once, at the start of the run, when its Kedro runner is a poor fit for this project
    (:func:`runner_advice`)."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], catalog: Any) -> None:
        runtime = catalog.load("params:runtime") if "params:runtime" in catalog else None
        advice = runner_advice(run_params.get("runner"), (runtime or {}).get("executor", "local"))
        if advice:
            logger.warning(advice)


class RuntimeHook:
    """Chooses where the run's parallel work goes (``params:runtime``, see
    ``music_genre.infra.parallel``) before the first node, and disconnects from the cluster - stopping
    it when the run started it (``runtime.address: null``) - when the run ends or fails.

    A hook rather than a ``params:runtime`` input on every per-track node: the executor is a
    property of the run, not of a node's result (local and Dask give the same outputs), and it
    keeps the choice in one place instead of in every node signature."""

    @hook_impl
    def before_pipeline_run(self, catalog: Any) -> None:
        from music_genre.infra.parallel import configure

        runtime = configure(catalog.load("params:runtime") if "params:runtime" in catalog else None)
        if runtime.mixed_precision:  # else TensorFlow is not even imported here
            from music_genre.infra.accelerator import configure_precision

            configure_precision(True)
        if runtime.executor == "dask" and runtime.address:
            # connect now: an unreachable scheduler stops the run before any work, without a
            # traceback (the cause is the configuration)
            from music_genre.infra.parallel import SchedulerUnreachableError, dask_client

            try:
                dask_client()
            except SchedulerUnreachableError as exc:
                raise click.ClickException(str(exc)) from None

    @hook_impl
    def after_pipeline_run(self) -> None:
        from music_genre.infra.parallel import shutdown

        shutdown()

    @hook_impl
    def on_pipeline_error(self) -> None:
        from music_genre.infra.parallel import shutdown

        shutdown()
