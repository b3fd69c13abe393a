"""Project pipelines: every folder under ``pipelines/`` is one, plus ``__default__``: all of
them but ``inference``, which needs a music folder (``inference.folder``) and trained models.
The pipelines that make a registered model also register it (:mod:`music_genre.tracking.registry`)."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    from music_genre.tracking.registry import REGISTERED_NAMES, registration_pipeline

    pipelines = find_pipelines(raise_errors=True)
    for name in REGISTERED_NAMES:
        if name in pipelines:
            pipelines[name] = pipelines[name] + registration_pipeline(name)
    pipelines["__default__"] = sum(
        (p for name, p in pipelines.items() if name != "inference"), Pipeline([])
    )
    return pipelines
