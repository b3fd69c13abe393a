"""The transfer pipeline's datasets on an in-memory catalog (shared by its test files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kedro.io import DataCatalog, MemoryDataset

from music_genre.datasets import (
    AtomicPickleDataset,
    FeatureStoreDataset,
    FeatureStoreIndexDataset,
    MlflowModelRunsDataset,
    OnnxModelDataset,
)
from music_genre.datasets.feature_store import stored_with
from music_genre.pipelines.transfer.extraction import FeatureJob, run_job


def transfer_catalog(
    tmp_path: Path, tracks: Any, loaders: Any, params: dict[str, Any]
) -> DataCatalog:
    return DataCatalog(
        {
            "tracks": MemoryDataset(tracks),
            "log_mel_spectrograms": MemoryDataset(loaders, copy_mode="assign"),
            "params:transfer": MemoryDataset(params),
            "transfer_features": FeatureStoreDataset(str(tmp_path / "features")),
            "transfer_feature_index": FeatureStoreIndexDataset(str(tmp_path / "features")),
            "transfer_search_results": MemoryDataset(copy_mode="assign"),
            "transfer_results": MemoryDataset(),
            "transfer_excluded_tracks": MemoryDataset(),
            "transfer_mlflow_runs": MlflowModelRunsDataset(
                str(tmp_path / "runs.csv"), pipeline="transfer"
            ),
            # files, as in the project: a MemoryDataset would be released once the export
            # node has read it
            "transfer_best_model": AtomicPickleDataset(
                filepath=str(tmp_path / "transfer_best_model.pkl")
            ),
            "transfer_best_backbone": OnnxModelDataset(
                str(tmp_path / "transfer_best_backbone.onnx")
            ),
            "transfer_best_confusion_matrix": MemoryDataset(copy_mode="assign"),
            "transfer_validation_predictions": MemoryDataset(),
            "transfer_test_predictions": MemoryDataset(),
        }
    )


def save_jobs(folder: Path, jobs: Sequence[FeatureJob]) -> None:
    """What the extraction node and the catalog do with ``jobs``: each runs against the
    store's index and every batch and manifest it yields is saved at once."""
    index = FeatureStoreIndexDataset(str(folder)).load()
    store = FeatureStoreDataset(str(folder))
    for job in jobs:
        for item in run_job(job, stored_with(index.get(job.key, {}), job.feature_names)):
            store.save(item)
