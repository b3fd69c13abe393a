"""MLflow tracking: where the store is (:mod:`.uri`, re-exported here; ``python -m
music_genre.tracking [env]`` prints it) and the Model Registry's champion rule
(:mod:`.registry`, imported on its own: it needs pandas)."""

from __future__ import annotations

from .uri import (
    CHAMPION_URI,
    DEFAULT_URI,
    ENV_VAR,
    absolute_uri,
    configured_uri,
    resolve_tracking_uri,
    tracking_uri,
)

__all__ = [
    "ENV_VAR",
    "DEFAULT_URI",
    "CHAMPION_URI",
    "resolve_tracking_uri",
    "absolute_uri",
    "configured_uri",
    "tracking_uri",
]
