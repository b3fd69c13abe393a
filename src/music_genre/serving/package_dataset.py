"""The packaged genre predictor as a Kedro dataset: a folder the serving pipeline writes and
``genre-predict`` reads without a Kedro session (:func:`music_genre.serving.package.save_package`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from .package import MANIFEST, load_package, read_manifest, save_package


class PackagedPredictorDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """Saves ``{"predictor": <predictor>, "about": {...}}`` as a self-contained folder (ONNX
    networks, numpy arrays for the fitted scikit-learn parts, a manifest with each file's
    SHA-256); loads the same mapping, ``about`` being the manifest. A damaged file fails the
    load with its name."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._folder = Path(filepath)
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        return {"predictor": load_package(self._folder), "about": read_manifest(self._folder)}

    def save(self, data: dict[str, Any]) -> None:
        save_package(data["predictor"], self._folder, data.get("about", {}))

    def _exists(self) -> bool:
        return (self._folder / MANIFEST).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._folder)}
