"""Project-specific Kedro datasets (the catalog does all I/O; nodes only compute)."""

from .audio_collection import AudioCollection, AudioCollectionDataset
from .mlflow_runs import MlflowModelRunsDataset
from .optional_csv import OptionalCSVDataset
from .spectrogram_store import SpectrogramStoreDataset, SpectrogramStoreIndexDataset

__all__ = [
    "AudioCollection",
    "AudioCollectionDataset",
    "MlflowModelRunsDataset",
    "OptionalCSVDataset",
    "SpectrogramStoreDataset",
    "SpectrogramStoreIndexDataset",
]
