"""Kedro project settings."""

import warnings

from kedro.config import OmegaConfigLoader

from music_genre.config import ParameterValidationHook
from music_genre.hooks import (
    MissingInputsHook,
    MlflowRunsHook,
    RunnerAdviceHook,
    RunSummaryHook,
    RuntimeHook,
    SetupErrorHook,
)
from music_genre.pipelines.inference.hooks import ModelArtifactsHook
from music_genre.tracking import resolve_tracking_uri

# Kedro 1.7's own config loader still calls OmegaConf's renamed resolver API on every run: a
# deprecation notice for Kedro's maintainers, nothing a user of this project can act on.
warnings.filterwarnings(
    "ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning
)

# ParameterValidationHook: every run's parameters are checked against their schemas first;
# MissingInputsHook: a run whose inputs another pipeline makes stops before any work;
# RuntimeHook: where the parallel work runs (params:runtime: this machine or a Dask cluster);
# RunnerAdviceHook: a run under ParallelRunner is told once which runner fits (README: Runners);
# SetupErrorHook: an error in the user's set-up (e.g. weights unavailable offline) ends the run
# with its message, without a traceback.
HOOKS = (
    ParameterValidationHook(),
    MissingInputsHook(),
    RunSummaryHook(),
    RuntimeHook(),
    MlflowRunsHook(),
    RunnerAdviceHook(),
    SetupErrorHook(),
    ModelArtifactsHook(),  # the inference pipeline's lazy model loader
)

# The project must make no network calls at run time: never load the telemetry plugin's hooks
# (the committed `.telemetry` file also records consent: false for the CLI side).
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-telemetry",)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # `conf/demo` overrides single keys (a path, an epoch budget) without restating whole
    # parameter blocks, so parameters merge key by key.
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
    # mlflow.yml: `${tracking_uri:<default>}`, MLFLOW_TRACKING_URI overriding (music_genre.tracking)
    "custom_resolvers": {"tracking_uri": resolve_tracking_uri},
}
