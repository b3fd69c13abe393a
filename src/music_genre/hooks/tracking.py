"""The ``kedro run``'s MLflow runs: each ``*_mlflow_runs`` dataset gets its pipeline's
``log_models`` parameter, the parent run is named after what ran, and the live child runs of
the Keras trainings (:mod:`music_genre.tracking.live`) still open when a node or the run fails
end ``FAILED`` (``MlflowRunsHook``)."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline


def parent_run_name(run_params: dict[str, Any]) -> str:
    """The name of the ``kedro run``'s MLflow run: what ran, where (kedro-mlflow names it after
    the pipelines alone, ``__default__`` for a plain ``kedro run``)."""
    names = run_params.get("pipeline_names") or run_params.get("pipeline_name") or []
    if isinstance(names, str):
        names = [names]
    what = ", ".join(n for n in names if n != "__default__") or "all pipelines"
    return f"kedro run: {what} (env {run_params.get('env') or 'local'})"


class MlflowRunsHook:
    """Before the first node: gives each ``*_mlflow_runs`` dataset of the run its pipeline's
    ``log_models`` parameter (``selected`` | ``all`` | ``none``, validated with the other
    parameters; see :mod:`music_genre.datasets.mlflow_runs`), and names the ``kedro run``'s
    MLflow run after what ran (``trylast``: after kedro-mlflow opened it).

    A failing node or run ends the live child runs still open ``FAILED`` (a training that
    raised ended its own already; the others were waiting for their evaluation or for the runs
    dataset), so the UI shows none as running. Runs still open after a successful run (a
    ``kedro run`` that stopped before the runs dataset, e.g. ``--to-nodes``) end ``FINISHED``.
    """

    @hook_impl(trylast=True)
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any
    ) -> None:
        from music_genre.datasets.mlflow_runs import MlflowModelRunsDataset

        for name in sorted(pipeline.all_outputs()):
            if not name.endswith("_mlflow_runs") or name not in catalog:
                continue
            dataset = catalog[name]
            if not isinstance(dataset, MlflowModelRunsDataset):
                continue
            key = f"params:{dataset.pipeline}"
            params = catalog.load(key) if key in catalog else None
            if isinstance(params, dict) and "log_models" in params:
                dataset.log_models = params["log_models"]
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.set_tag("mlflow.runName", parent_run_name(run_params))

    @hook_impl
    def on_node_error(self, error: Exception, node: Any) -> None:
        from music_genre.tracking.live import FAILED, end_open_runs

        end_open_runs(FAILED)

    @hook_impl
    def on_pipeline_error(self, error: Exception) -> None:
        from music_genre.tracking.live import FAILED, end_open_runs

        end_open_runs(FAILED)

    @hook_impl
    def after_pipeline_run(self) -> None:
        from music_genre.tracking.live import FINISHED, end_open_runs

        end_open_runs(FINISHED)
