"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from music_genre.hooks import RunSummaryHook
from music_genre.parameters import ParameterValidationHook

# ParameterValidationHook: every run's parameters are checked against their schemas first.
HOOKS = (ParameterValidationHook(), RunSummaryHook())

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
}
