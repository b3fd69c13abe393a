"""Kedro project settings."""

import warnings

from music_genre.config import ParameterValidationHook

# CONFIG_LOADER_CLASS, CONFIG_LOADER_ARGS: how the configuration loads, defined in
# music_genre.config.loader (also what the pipelines are built from without a Kedro context)
from music_genre.config.loader import CONFIG_LOADER_ARGS as CONFIG_LOADER_ARGS
from music_genre.config.loader import CONFIG_LOADER_CLASS as CONFIG_LOADER_CLASS
from music_genre.hooks import (
    MissingInputsHook,
    MlflowRunsHook,
    RunnerAdviceHook,
    RunSummaryHook,
    RuntimeHook,
    SetupErrorHook,
)
from music_genre.pipelines.inference.hooks import ModelArtifactsHook

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
