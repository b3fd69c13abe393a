"""The serving pipeline, with its registration node, run on a tiny network: what
``kedro run --pipelines=serving`` logs and registers, without a Kedro project."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

INGESTION = {"source": "fma", "fma_root": "data/01_raw/tiny", "subset": "small"}


def tiny_test_predictions(genres: list[str], n: int = 10, correct: int = 7) -> pd.DataFrame:
    """A per-track test-prediction table (what the CNN pipeline writes) of ``n`` tracks."""
    return pd.DataFrame(
        {
            "track_id": range(1000, 1000 + n),
            "label": [0] * n,
            "predicted": [0] * correct + [1] * (n - correct),
            **{f"prob_{g}": [1.0 / len(genres)] * n for g in genres},
        }
    )


def package_and_register(
    model: Any,
    genres: list[str],
    spectrogram: dict[str, Any],
    workdir: Path,
    tracking_uri: str,
    serving: dict[str, Any],
    variant: str = "study, 4 blocks",
    parent_run: bool = False,
) -> pd.DataFrame:
    """Run the serving pipeline (+ its registration node) on ``model`` as the best CNN: logs
    the genre predictor into ``tracking_uri`` and registers it as ``genre_predictor``
    (champion). Returns the runs index (``workdir / 'runs.csv'``); the registration outcome is
    ``workdir / 'registered.json'``. ``parent_run``: inside a run, as kedro-mlflow opens."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from music_genre.datasets import MlflowModelRunsDataset, MlflowRegisteredModelDataset
    from music_genre.pipelines.serving import create_pipeline
    from music_genre.pipelines.serving.pipeline import ARTIFACTS
    from music_genre.serving.package_dataset import PackagedPredictorDataset
    from music_genre.tracking.registry import REGISTERED_KINDS, registration_pipeline

    artifacts = {name: MemoryDataset(None) for name in ARTIFACTS}
    artifacts["cnn_best_model"] = MemoryDataset(model, copy_mode="assign")
    # a run name holding a comma broke the old shell pipeline of `make serve`
    artifacts["cnn_best_model_info"] = MemoryDataset({"class_names": genres, "variant": variant})
    predictions = {f"{k}_test_predictions": MemoryDataset(None) for k in REGISTERED_KINDS}
    predictions["cnn_test_predictions"] = MemoryDataset(tiny_test_predictions(genres))
    catalog = DataCatalog(
        {
            **artifacts,
            **predictions,
            "handcrafted_results": MemoryDataset(None),
            "cnn_results": MemoryDataset(
                pd.DataFrame({"val_accuracy": [0.5], "test_accuracy": [0.4]})
            ),
            "transfer_results": MemoryDataset(None),
            "params:spectrogram": MemoryDataset(dict(spectrogram)),
            "params:handcrafted": MemoryDataset({}),
            "params:serving": MemoryDataset(serving),
            "params:ingestion": MemoryDataset(INGESTION),
            "genre_predictor_package": PackagedPredictorDataset(str(workdir / "genre_predictor")),
            "genre_predictor_mlflow_runs": MlflowModelRunsDataset(
                filepath=str(workdir / "runs.csv"), pipeline="serving"
            ),
            "serving_registered_model": MlflowRegisteredModelDataset(
                filepath=str(workdir / "registered.json")
            ),
        }
    )
    mlflow.set_tracking_uri(tracking_uri)
    previous = Path.cwd()
    os.chdir(workdir)  # MLflow's default artifact folder (./mlruns) goes there too
    try:
        pipeline = create_pipeline() + registration_pipeline("serving")
        if parent_run:
            mlflow.set_experiment("music_genre")
            with mlflow.start_run(run_name="kedro run: serving (env team)"):
                SequentialRunner().run(pipeline, catalog)
        else:
            SequentialRunner().run(pipeline, catalog)
    finally:
        os.chdir(previous)
        mlflow.set_tracking_uri("")
    return pd.read_csv(workdir / "runs.csv")
