"""Project hooks (registered in ``settings.py``), one module per concern: the run summary,
the inputs a run needs, where the work runs, the run's MLflow runs. This package re-exports them."""

from __future__ import annotations

from .inputs import (
    MissingInputsError,
    MissingInputsHook,
    absent_inputs,
    all_pipelines,
    foreign_tracks_message,
    missing_inputs_message,
)
from .runtime import (
    RunnerAdviceHook,
    RuntimeHook,
    SetupErrorHook,
    runner_advice,
)
from .summary import (
    RunSummaryHook,
    best_models,
    slowest_nodes,
)
from .tracking import (
    MlflowRunsHook,
    parent_run_name,
)

__all__ = [
    "best_models",
    "slowest_nodes",
    "RunSummaryHook",
    "MissingInputsError",
    "absent_inputs",
    "all_pipelines",
    "missing_inputs_message",
    "MissingInputsHook",
    "foreign_tracks_message",
    "SetupErrorHook",
    "runner_advice",
    "RunnerAdviceHook",
    "RuntimeHook",
    "MlflowRunsHook",
    "parent_run_name",
]
