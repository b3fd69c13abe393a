"""Project-specific Kedro datasets (the catalog does all I/O; nodes only compute).

The classes are imported on first use (PEP 562 ``__getattr__``): the catalog materializes its
datasets lazily, so a command that loads two tables does not import matplotlib, MLflow or
TensorFlow through the dataset classes it never uses.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULE_OF = {
    "AtomicCSVDataset": "atomic_files",
    "AtomicJSONDataset": "atomic_files",
    "AtomicParquetDataset": "atomic_files",
    "AtomicPickleDataset": "atomic_files",
    "AtomicTextDataset": "atomic_files",
    "AtomicMatplotlibDataset": "atomic_figures",
    "AtomicPlotlyJSONDataset": "atomic_figures",
    "AudioCollection": "audio_collection",
    "AudioCollectionDataset": "audio_collection",
    "FeatureRow": "feature_rows",
    "FeatureRowsDataset": "feature_rows",
    "FeatureRowsIndexDataset": "feature_rows",
    "FeatureStore": "feature_store",
    "FeatureStoreDataset": "feature_store",
    "FeatureStoreIndexDataset": "feature_store",
    "FmaFeaturesDataset": "fma_features",
    "FmaFeaturesFile": "fma_features",
    "KerasModelDataset": "keras_model",
    "OnnxModelDataset": "keras_model",
    "LibraryPredictionsDataset": "library_predictions",
    "MarkdownReportDataset": "markdown_report",
    "MlflowModelRunsDataset": "mlflow_runs",
    "MlflowRegisteredModelDataset": "mlflow_registry",
    "OptionalCSVDataset": "optional",
    "OptionalJSONDataset": "optional",
    "OptionalParquetDataset": "optional",
    "SpectrogramStoreDataset": "spectrogram_store",
    "SpectrogramStoreIndexDataset": "spectrogram_store",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
