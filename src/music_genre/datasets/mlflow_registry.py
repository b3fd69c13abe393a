"""Register a model version in the MLflow Model Registry and move its aliases, from the catalog.

Saving a *registration request* (:func:`music_genre.tracking.registry.registration_request`)
registers its ``model_uri`` under its ``name`` with its tags (once per run: saving the same
run again reuses its version), then sets the alias ``champion`` or ``challenger`` by
:func:`music_genre.tracking.registry.champion_decision`, and writes what was done as JSON (the
file kedro-viz previews and ``load`` returns). A request marked ``skipped`` registers nothing.
Loading a registered model is kedro-mlflow's ``MlflowModelRegistryDataset`` (catalog entry
``genre_predictor_champion``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from music_genre.infra.atomic import atomic_path

logger = logging.getLogger(__name__)


def _alias_version(client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:  # no such alias (or no such model) yet
        return None


def register(request: dict[str, Any]) -> dict[str, Any]:
    """Register ``request`` in the current MLflow registry; returns the outcome (name,
    version, alias, reason, tags)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from music_genre.tracking.registry import CHALLENGER, CHAMPION, champion_decision

    client = MlflowClient()
    name, run_id, tags = request["name"], request["run_id"], dict(request["tags"])
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if existing:
        version = max(existing, key=lambda v: int(v.version))
    else:
        version = mlflow.register_model(request["model_uri"], name, tags=tags)
    number = str(version.version)
    champion = _alias_version(client, name, CHAMPION)
    if champion is not None and str(champion.version) == number:
        alias, reason = CHAMPION, "already the champion"
    else:
        alias, reason = champion_decision(
            tags, None if champion is None else dict(champion.tags), champion and champion.version
        )
        client.set_registered_model_alias(name, alias, number)
        client.set_model_version_tag(name, number, "alias_reason", reason)
    logger.info("Registered %s version %s (%s): %s", name, number, alias, reason)
    return {
        "name": name,
        "version": number,
        "alias": alias,
        "reason": reason,
        "previous_champion": None if champion is None else str(champion.version),
        "model_uri": request["model_uri"],
        "tags": tags,
        "champion_uri": f"models:/{name}@{CHAMPION}",
        "challenger_uri": f"models:/{name}@{CHALLENGER}" if alias == CHALLENGER else None,
    }


class MlflowRegisteredModelDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """Saves a registration request to the MLflow Model Registry; loads the JSON outcome."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def save(self, data: dict[str, Any]) -> None:
        if data.get("skipped"):
            logger.warning("Nothing registered as %s: %s", data.get("name"), data["skipped"])
            outcome = dict(data)
        else:
            outcome = register(data)
        with atomic_path(self._filepath) as tmp:
            Path(tmp).write_text(json.dumps(outcome, indent=2, default=str))

    def load(self) -> dict[str, Any]:
        if not self._filepath.is_file():
            raise DatasetError(f"{self._filepath} not found: no model registered yet")
        return json.loads(self._filepath.read_text())

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
