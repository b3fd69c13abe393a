"""Pinned pip requirements of a logged model: the versions installed here, so the model's
environment is the one it was trained and checked in (and MLflow infers nothing, slowly)."""

from __future__ import annotations

import importlib.metadata
import logging

logger = logging.getLogger(__name__)


def pinned_requirements(*dists: str) -> list[str]:
    """``dist==version`` of each installed distribution; one not installed is left out, with
    a warning (the model then relies on its environment to provide it)."""
    pins = []
    for dist in dists:
        try:
            pins.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            logger.warning("%s is not installed: not pinned in the model's requirements", dist)
    return pins
