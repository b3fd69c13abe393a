"""The module paths of the flat layout before issue #22, mapped to where their code lives now.

TO BE REMOVED (issue #22) once no artefact written before the layered layout is in use.

Pickles (joblib/cloudpickle of the transfer classifier pipelines, the predictors, the logged
MLflow pyfunc model) and Keras files (a custom layer's ``module``) name the module a class was
defined in, e.g. ``music_genre.predict.CnnPredictor``. :func:`install` (called by
``music_genre/__init__``) adds a ``sys.meta_path`` finder that answers those old names, and only
them, with a module that looks each attribute up in the new modules, so the same class objects
are found. Importing an old path warns (``DeprecationWarning``); new code must not use them
(``lint-imports`` would not see it, tests/test_legacy_layout.py checks that src does not).

``music_genre.audio`` (the old decoding module) is now the ``audio`` package: old artefacts
never pickled its classes (only worker tasks do, within one run), so it is not mapped.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

# old module -> the new modules that hold its public names, looked up in this order
LEGACY_MODULES: dict[str, tuple[str, ...]] = {
    "music_genre.accelerator": ("music_genre.infra.accelerator",),
    "music_genre.atomic": ("music_genre.infra.atomic",),
    "music_genre.audio_location": ("music_genre.infra.location",),
    "music_genre.augment": ("music_genre.audio.augment",),
    "music_genre.backbones": ("music_genre.models.backbones",),
    "music_genre.cnn_model": ("music_genre.models.cnn",),
    "music_genre.evaluation": ("music_genre.models.evaluation",),
    "music_genre.features": ("music_genre.audio.features",),
    "music_genre.fusion": ("music_genre.models.fusion",),
    "music_genre.inference": ("music_genre.models.inference",),
    "music_genre.musicnn": ("music_genre.models.musicnn",),
    "music_genre.notebooks": ("music_genre.commands.notebooks",),
    "music_genre.numba_cache": ("music_genre.infra.numba_cache",),
    "music_genre.parallel": ("music_genre.infra.parallel",),
    "music_genre.parameters": ("music_genre.config",),
    "music_genre.plots": ("music_genre.models.plots",),
    # GenrePredictorModel was looked up here by served models pickled before it moved out
    "music_genre.predict": (
        "music_genre.serving",
        "music_genre.contracts",
        "music_genre.models.probabilities",
        "music_genre.models.backbones",
        "music_genre.serving.served_model",
    ),
    "music_genre.predict_cli": ("music_genre.commands.predict",),
    "music_genre.preprocessing": ("music_genre.models.preprocessing",),
    "music_genre.quiet_imports": ("music_genre.infra.quiet_imports",),
    "music_genre.selection": ("music_genre.models.selection", "music_genre.contracts"),
    "music_genre.serve_cli": ("music_genre.commands.serve",),
    "music_genre.served_model": ("music_genre.serving.served_model",),
    "music_genre.spectrograms": ("music_genre.audio.spectrograms",),
    "music_genre.storage": ("music_genre.infra.storage",),
    "music_genre.training_audio": ("music_genre.audio.training_audio",),
}


class LegacyModule(types.ModuleType):
    """An old module path: each attribute is the one of the first new module that has it."""

    def __init__(self, name: str, targets: tuple[str, ...]) -> None:
        super().__init__(name, f"moved (issue #22) to {', '.join(targets)}")
        self.__legacy_targets__ = targets

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        for target in self.__legacy_targets__:
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {self.__name__!r} (moved) has no attribute {name!r}")


class _LegacyFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in LEGACY_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        targets = LEGACY_MODULES[spec.name]
        warnings.warn(
            f"{spec.name} is an old module path (issue #22): use {targets[0]}",
            DeprecationWarning,
            stacklevel=2,
        )
        return LegacyModule(spec.name, targets)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


_FINDER = _LegacyFinder()


def install() -> None:
    """Answer the old module paths (once per process; after every real finder)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)
