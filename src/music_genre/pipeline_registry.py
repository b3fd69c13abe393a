"""Project pipelines: every folder under ``pipelines/`` is one, plus ``__default__``: all of
them but ``inference``, which needs a music folder (``inference.folder``) and trained models."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (p for name, p in pipelines.items() if name != "inference"), Pipeline([])
    )
    return pipelines
