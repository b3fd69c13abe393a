"""How the project's configuration is loaded: the config loader class and its arguments, which
``settings.py`` hands to Kedro and :func:`~music_genre.config.project_parameters` uses without
a Kedro context (one definition, below the entry points that use it)."""

from __future__ import annotations

from typing import Any

from kedro.config import OmegaConfigLoader

from music_genre.tracking import resolve_tracking_uri

CONF_SOURCE = "conf"
CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS: dict[str, Any] = {
    "base_env": "base",
    "default_run_env": "local",
    # `conf/demo` overrides single keys (a path, an epoch budget) without restating whole
    # parameter blocks, so parameters merge key by key.
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
    # mlflow.yml: `${tracking_uri:<default>}`, MLFLOW_TRACKING_URI overriding (music_genre.tracking)
    "custom_resolvers": {"tracking_uri": resolve_tracking_uri},
}
