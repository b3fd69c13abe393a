"""Project-specific Kedro datasets (the catalog does all I/O; nodes only compute)."""

from .atomic_files import (
    AtomicCSVDataset,
    AtomicJSONDataset,
    AtomicMatplotlibDataset,
    AtomicParquetDataset,
    AtomicPickleDataset,
    AtomicPlotlyJSONDataset,
    AtomicTextDataset,
)
from .audio_collection import AudioCollection, AudioCollectionDataset
from .feature_rows import FeatureRow, FeatureRowsDataset, FeatureRowsIndexDataset
from .feature_store import FeatureStore, FeatureStoreDataset, FeatureStoreIndexDataset
from .fma_features import FmaFeaturesDataset, FmaFeaturesFile
from .keras_model import KerasModelDataset, OnnxModelDataset
from .markdown_report import MarkdownReportDataset
from .mlflow_runs import MlflowModelRunsDataset
from .optional import OptionalCSVDataset, OptionalParquetDataset
from .spectrogram_store import SpectrogramStoreDataset, SpectrogramStoreIndexDataset

__all__ = [
    "AtomicCSVDataset",
    "AtomicJSONDataset",
    "AtomicMatplotlibDataset",
    "AtomicParquetDataset",
    "AtomicPickleDataset",
    "AtomicPlotlyJSONDataset",
    "AtomicTextDataset",
    "AudioCollection",
    "AudioCollectionDataset",
    "FeatureRow",
    "FeatureRowsDataset",
    "FeatureRowsIndexDataset",
    "FeatureStore",
    "FeatureStoreDataset",
    "FeatureStoreIndexDataset",
    "FmaFeaturesDataset",
    "FmaFeaturesFile",
    "KerasModelDataset",
    "OnnxModelDataset",
    "MarkdownReportDataset",
    "MlflowModelRunsDataset",
    "OptionalCSVDataset",
    "OptionalParquetDataset",
    "SpectrogramStoreDataset",
    "SpectrogramStoreIndexDataset",
]
