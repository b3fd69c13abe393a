"""Log trained model configurations as MLflow child runs, from the catalog.

Nodes stay pure: a training node returns a list of *run records* (plain dicts); saving them to
this dataset opens one nested MLflow run per record under the run kedro-mlflow started for the
``kedro run`` (or a fresh run when none is active), and writes a CSV index of the runs so the
result is also a normal file that kedro-viz previews.

A run record::

    {
        "run_name": "mlp (512, 256)",            # shown in the MLflow UI
        "params": {"hidden_units": "(512, 256)", ...},
        "metrics": {"test_accuracy": 0.49, ...},  # final values
        "history": {"loss": [...], "val_loss": [...]},  # per-epoch curves (optional)
        "figures": {"confusion_matrix.png": <matplotlib Figure>},  # optional
        "dicts": {"hyperband_trials.json": [...]},  # JSON artifacts (optional)
        "model": <keras.Model | sklearn estimator | mlflow.pyfunc.PythonModel | None>,
        "tags": {...},                            # optional
    }
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets._typing import TablePreview

from music_genre.atomic import atomic_path

logger = logging.getLogger(__name__)


def _pinned(*dists: str) -> list[str]:
    """Exact requirements of the running environment: MLflow then needs no slow inference."""
    pins = []
    for dist in dists:
        try:
            pins.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def log_model(model: Any, name: str = "model") -> str | None:
    """Log ``model`` with the MLflow flavour that fits it; returns the flavour used."""
    import mlflow

    if model is None:
        return None
    try:
        import keras

        if isinstance(model, keras.Model):
            mlflow.keras.log_model(
                model, name=name, pip_requirements=_pinned("tensorflow", "keras", "numpy")
            )
            return "keras"
    except ImportError:
        pass
    from sklearn.base import BaseEstimator

    if isinstance(model, BaseEstimator):
        mlflow.sklearn.log_model(
            model,
            name=name,
            pip_requirements=_pinned("scikit-learn", "numpy", "scipy"),
            skops_trusted_types=_own_skops_types(model),
        )
        return "sklearn"
    if isinstance(model, mlflow.pyfunc.PythonModel):
        mlflow.pyfunc.log_model(name=name, python_model=model)
        return "pyfunc"
    raise DatasetError(f"Don't know how to log a model of type {type(model).__name__} in MLflow")


def _own_skops_types(model: Any) -> list[str] | None:
    """The non-default types of a model this run trained itself (e.g. MLPClassifier's
    AdamOptimizer), which MLflow's default skops format otherwise refuses to save."""
    try:
        import skops.io
    except ImportError:
        return None
    return skops.io.get_untrusted_types(data=skops.io.dumps(model)) or None


class MlflowModelRunsDataset(AbstractDataset[list[dict[str, Any]], pd.DataFrame]):
    """Saves run records as nested MLflow runs; loads the CSV index of those runs."""

    def __init__(
        self,
        filepath: str,
        pipeline: str,
        log_models: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(filepath)
        self._pipeline = pipeline
        self._log_models = log_models
        self.metadata = metadata

    def save(self, data: list[dict[str, Any]]) -> None:
        import mlflow

        rows = []
        parent = mlflow.active_run()
        for record in data:
            with mlflow.start_run(run_name=record["run_name"], nested=parent is not None) as run:
                tags = {"pipeline": self._pipeline, **record.get("tags", {})}
                if parent is not None:
                    tags["kedro_parent_run_id"] = parent.info.run_id
                mlflow.set_tags(tags)
                params = {k: _param_value(v) for k, v in record.get("params", {}).items()}
                if params:
                    mlflow.log_params(params)
                metrics = {k: float(v) for k, v in record.get("metrics", {}).items()}
                if metrics:
                    mlflow.log_metrics(metrics)
                _log_history(run.info.run_id, record.get("history", {}))
                for filename, figure in record.get("figures", {}).items():
                    mlflow.log_figure(figure, filename)
                for filename, content in record.get("dicts", {}).items():
                    mlflow.log_dict(content, filename)
                flavour = log_model(record.get("model")) if self._log_models else None
                rows.append(
                    {
                        "run_name": record["run_name"],
                        "run_id": run.info.run_id,
                        "model_flavour": flavour,
                        "model_uri": f"runs:/{run.info.run_id}/model" if flavour else None,
                        **{f"param.{k}": v for k, v in params.items()},
                        **{f"metric.{k}": v for k, v in metrics.items()},
                    }
                )
            logger.info("MLflow run %r (%s) logged", record["run_name"], run.info.run_id)
        with atomic_path(self._filepath) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)

    def load(self) -> pd.DataFrame:
        if not self._filepath.is_file():
            raise DatasetError(f"{self._filepath} not found: run the {self._pipeline} pipeline")
        return pd.read_csv(self._filepath)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "pipeline": self._pipeline}

    def preview(self, nrows: int = 20) -> TablePreview:
        """kedro-viz table preview of the runs index."""
        return TablePreview(self.load().head(nrows).to_dict(orient="split"))


def _param_value(value: Any) -> Any:
    # MLflow params are strings of at most 6000 characters; tuples and dicts read best as text.
    return value if isinstance(value, int | float | str | bool) else str(value)[:6000]


def _log_history(run_id: str, history: dict[str, Any]) -> None:
    """Per-epoch curves in a few batched writes (one write per value is slow on SQLite)."""
    import time

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    metrics = [
        Metric(key, float(value), now, step)
        for key, values in history.items()
        for step, value in enumerate(values)
    ]
    client = MlflowClient()
    for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
