"""Where the MLflow store is: one definition for ``kedro run``, ``genre-serve``,
``genre-predict`` and the Makefile (``python -m music_genre.tracking`` prints it).

The value is ``server.mlflow_tracking_uri`` of the environment's ``mlflow.yml``
(``conf/base``: ``sqlite:///mlflow.db`` in the project folder; ``conf/team``: a shared MLflow
server), written there as ``${tracking_uri:<default>}``: the environment variable
``MLFLOW_TRACKING_URI``, when set, overrides it everywhere (the resolver is registered in
``settings.py``). A relative SQLite path is made absolute against the project folder, so a
command started elsewhere does not create an empty store there.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "MLFLOW_TRACKING_URI"
DEFAULT_URI = "sqlite:///mlflow.db"
CHAMPION_URI = "models:/genre_predictor@champion"


def resolve_tracking_uri(default: str = DEFAULT_URI) -> str:
    """The OmegaConf resolver ``${tracking_uri:<default>}``: ``MLFLOW_TRACKING_URI`` wins."""
    return os.environ.get(ENV_VAR) or default


def absolute_uri(uri: str, project: Path) -> str:
    """``uri`` with a relative ``sqlite:///`` path made absolute against ``project``."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + (project.resolve() / uri.removeprefix(prefix)).as_posix()
    return uri


def configured_uri(project: Path, env: str | None = None) -> str:
    """``server.mlflow_tracking_uri`` of the project's ``mlflow.yml`` for ``env`` (base merged
    with the environment's, ``MLFLOW_TRACKING_URI`` resolved), without a Kedro session."""
    from kedro.config import MissingConfigException
    from kedro.framework.project import settings
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(project / settings.CONF_SOURCE), env=env, **settings.CONFIG_LOADER_ARGS
    )
    loader.config_patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
    try:
        server = (loader["mlflow"] or {}).get("server") or {}
    except MissingConfigException:
        server = {}
    return server.get("mlflow_tracking_uri") or resolve_tracking_uri()


def tracking_uri(project: Path | str = ".", env: str | None = None) -> str:
    """The MLflow store of the project: ``MLFLOW_TRACKING_URI`` if set, else the configured
    one for ``env`` (default: ``KEDRO_ENV``), as an absolute URI."""
    project = Path(project).resolve()
    uri = os.environ.get(ENV_VAR)
    if not uri:
        # a folder that is no Kedro project (a copied store): its ./mlflow.db
        is_project = (project / "pyproject.toml").is_file() and (project / "conf").is_dir()
        uri = (
            configured_uri(project, env or os.environ.get("KEDRO_ENV"))
            if is_project
            else DEFAULT_URI
        )
    return absolute_uri(uri, project)
