"""``model_artifacts``: the run's catalog as a loader, so the inference node reads only the
chosen model's entries (as genre-predict does), not every model's (which would import
TensorFlow for the Keras models and require every model pipeline to have run)."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

MODEL_ARTIFACTS = "model_artifacts"


class CatalogLoader:
    """``loader(name)`` -> ``catalog.load(name)``."""

    def __init__(self, catalog: Any) -> None:
        self._catalog = catalog

    def __call__(self, name: str) -> Any:
        return self._catalog.load(name)


class ModelArtifactsHook:
    """Registers :data:`MODEL_ARTIFACTS` (a memory dataset holding a :class:`CatalogLoader`)
    in every run's catalog."""

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        from kedro.io import MemoryDataset

        if MODEL_ARTIFACTS not in catalog:
            catalog[MODEL_ARTIFACTS] = MemoryDataset(CatalogLoader(catalog), copy_mode="assign")
