"""Helpers of the notebooks in ``notebooks/``: load a catalog entry, or say which pipeline makes it.

The notebooks read everything through the Kedro catalog (``%load_ext kedro.ipython`` gives
``catalog``, ``context``, ``pipelines`` and ``session``); these helpers keep them short and let
them run, section by section, on a project where only some pipelines have run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.pipeline import Pipeline


def producing_pipeline(pipelines: Mapping[str, Pipeline], name: str) -> str:
    """The registered pipeline (not ``__default__``) that writes ``name``."""
    for pipeline_name, pipeline in pipelines.items():
        if pipeline_name != "__default__" and name in pipeline.all_outputs():
            return pipeline_name
    return "__default__"


def load_if_run(catalog: Any, pipelines: Mapping[str, Pipeline], name: str) -> Any | None:
    """``catalog.load(name)``, or None after printing "not run yet: kedro run --pipelines=X"."""
    value = catalog.load(name) if catalog.exists(name) else None
    if value is None:  # absent, or an Optional*Dataset whose pipeline has not run
        print(f"{name}: not run yet: kedro run --pipelines={producing_pipeline(pipelines, name)}")
    return value


def project_file(context: Any, path: str | Path) -> Path:
    """A path from a catalog table (relative ones are relative to the project root, where
    ``kedro run`` ran), usable from the notebooks' folder."""
    path = Path(path)
    return path if path.is_absolute() else Path(context.project_path) / path


def project_tracking_uri(context: Any) -> str:
    """kedro-mlflow's tracking URI with a relative SQLite path (``sqlite:///mlflow.db``, which
    ``kedro run`` resolves against the project root) made absolute: a notebook's kernel runs in
    ``notebooks/``."""
    uri = str(context.mlflow.server.mlflow_tracking_uri)
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(context.project_path) / uri.removeprefix(prefix))
    return uri
