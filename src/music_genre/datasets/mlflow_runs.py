"""Log trained model configurations as MLflow child runs, from the catalog.

Nodes stay pure: a training node returns a list of *run records* (plain dicts); saving them to
this dataset opens one nested MLflow run per record under the run kedro-mlflow started for the
``kedro run`` (or a fresh run when none is active), and writes a CSV index of the runs so the
result is also a normal file that kedro-viz previews.

A run record::

    {
        "run_name": "mlp (512, 256)",            # shown in the MLflow UI
        "params": {"hidden_units": "(512, 256)", ...},
        "metrics": {"val_accuracy": 0.52, "test_accuracy": 0.49, ...},  # final values
        # Keras's per-epoch curves (optional), logged as epoch_train_loss, epoch_val_loss, ...
        "history": {"loss": [...], "val_loss": [...]},
        "figures": {"confusion_matrix.png": <matplotlib Figure>},  # optional
        "dicts": {"hyperband_trials.json": [...]},  # JSON artifacts (optional)
        "model": <keras.Model | sklearn estimator | mlflow.pyfunc.PythonModel | None>,
        "log_model": <callable(model) -> flavour>,  # optional: logs "model" instead of log_model
        "tags": {...},                            # optional
        "run_id": "...",  # optional: the live run its training opened, reused here
        "selected": True,                         # optional: the configuration the node chose
    }

Every child run carries the tags ``pipeline`` and ``selected`` (``true`` on the configuration
the pipeline chose, by :mod:`music_genre.models.selection`'s rule: taken from the records' own
``selected`` flags when the node sets them, else applied here to the records' metrics and
params); MLflow itself links it to the ``kedro run``'s run (tag ``mlflow.parentRunId``).
``log_models`` (the pipeline's parameter of that name, set by
:class:`music_genre.hooks.LogModelsHook`) says whose model artefacts are logged: ``selected``
(default: only the chosen configuration's; the others keep their params, metrics, curves and
plots), ``all`` or ``none``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets._typing import TablePreview

from music_genre.infra.atomic import atomic_path
from music_genre.tracking.live import log_history
from music_genre.tracking.requirements import pinned_requirements

logger = logging.getLogger(__name__)

LOG_MODELS = ("selected", "all", "none")
# a record's param that holds a selection rule's column under another name
_COLUMN_ALIASES = {"params": "trainable_params"}


def log_model(model: Any, name: str = "model") -> str | None:
    """Log ``model`` with the MLflow flavour that fits it; returns the flavour used."""
    import mlflow

    if model is None:
        return None
    try:
        import keras

        if isinstance(model, keras.Model):
            mlflow.keras.log_model(
                model,
                name=name,
                pip_requirements=pinned_requirements("tensorflow", "keras", "numpy"),
            )
            return "keras"
    except ImportError:
        pass
    from sklearn.base import BaseEstimator

    if isinstance(model, BaseEstimator):
        mlflow.sklearn.log_model(
            model,
            name=name,
            pip_requirements=pinned_requirements("scikit-learn", "numpy", "scipy"),
            skops_trusted_types=_own_skops_types(model),
        )
        return "sklearn"
    if isinstance(model, mlflow.pyfunc.PythonModel):
        # a model that names its distributions (requirements) is pinned to them
        dists = getattr(model, "requirements", None)
        mlflow.pyfunc.log_model(
            name=name,
            python_model=model,
            pip_requirements=pinned_requirements(*dists) if dists else None,
        )
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
        log_models: str | bool = "selected",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(filepath)
        self._pipeline = pipeline
        self.log_models = log_models
        self.metadata = metadata

    @property
    def pipeline(self) -> str:
        return self._pipeline

    @property
    def log_models(self) -> str:
        """``selected``, ``all`` or ``none``: whose model artefacts :meth:`save` logs."""
        return self._log_models

    @log_models.setter
    def log_models(self, value: str | bool) -> None:
        if isinstance(value, bool):  # the former switch
            value = "all" if value else "none"
        if value not in LOG_MODELS:
            raise DatasetError(f"log_models: {value!r} is not one of {', '.join(LOG_MODELS)}")
        self._log_models = value

    def _logs_model(self, selected: bool) -> bool:
        return self._log_models == "all" or (self._log_models == "selected" and selected)

    def save(self, data: list[dict[str, Any]]) -> None:
        import mlflow

        rows = []
        parent = mlflow.active_run()
        chosen = selected_record(data, self._pipeline)
        for position, record in enumerate(data):
            selected = position == chosen
            run, live = _start_run(record, nested=parent is not None)
            with run:
                tags = {
                    **record.get("tags", {}),
                    "pipeline": self._pipeline,
                    "selected": str(selected).lower(),
                }
                mlflow.set_tags(tags)
                params = {k: _param_value(v) for k, v in record.get("params", {}).items()}
                if params:
                    mlflow.log_params(params)
                metrics = {k: float(v) for k, v in record.get("metrics", {}).items()}
                if metrics:
                    mlflow.log_metrics(metrics)
                if not live:  # a live run has its curves already (music_genre.tracking.live)
                    log_history(run.info.run_id, record.get("history", {}))
                for filename, figure in record.get("figures", {}).items():
                    mlflow.log_figure(figure, filename)
                for filename, content in record.get("dicts", {}).items():
                    mlflow.log_dict(content, filename)
                # a record may bring its own logger (the served predictor packages itself:
                # music_genre.serving.package), which this layer must not import
                logger_of_model = record.get("log_model") or log_model
                flavour = (
                    logger_of_model(record.get("model")) if self._logs_model(selected) else None
                )
                rows.append(
                    {
                        "run_name": record["run_name"],
                        "run_id": run.info.run_id,
                        "selected": selected,
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
        return {
            "filepath": str(self._filepath),
            "pipeline": self._pipeline,
            "log_models": self._log_models,
        }

    def preview(self, nrows: int = 20) -> TablePreview:
        """kedro-viz table preview of the runs index."""
        return TablePreview(self.load().head(nrows).to_dict(orient="split"))


def selected_record(records: list[dict[str, Any]], pipeline: str) -> int | None:
    """The position of the record of the configuration ``pipeline`` chose: the one whose
    ``selected`` flag the node set; else :mod:`music_genre.models.selection`'s rule for the pipeline
    applied to the records' metrics and params (comparison records excluded); a lone record is
    its own choice. ``None`` when nothing can be chosen."""
    from music_genre.contracts import BEST_MODEL_RULES
    from music_genre.models.selection import select_best

    flagged = [i for i, r in enumerate(records) if r.get("selected")]
    if flagged or any("selected" in r for r in records):
        return flagged[0] if flagged else None
    if len(records) == 1:
        return 0
    rule = BEST_MODEL_RULES.get(f"{pipeline}_results")
    if rule is None or not records:
        return None
    rows = []
    for record in records:
        params, metrics = record.get("params", {}), record.get("metrics", {})
        row = {**params, **metrics}
        for column, alias in _COLUMN_ALIASES.items():
            if column not in row and alias in params:
                row[column] = params[alias]
        rows.append(row)
    table = pd.DataFrame(rows)
    if rule.select_by not in table:
        return None
    comparison = [str(r.get("tags", {}).get("comparison", "")).lower() == "true" for r in records]
    candidates = table[[not c for c in comparison]]
    best = select_best(candidates, rule)
    return None if best is None else int(candidates.index[best])


def _start_run(record: dict[str, Any], nested: bool) -> tuple[Any, bool]:
    """The record's child run, and whether it is the live run its training opened (the
    record's ``run_id``, still open in this process: :mod:`music_genre.tracking.live`): that
    one is reused, so each configuration has one run; else a new one (MLflow tags it with
    mlflow.parentRunId). A ``run_id`` of an earlier process (a training log reloaded from disk)
    is not reopened: its run belongs to that earlier ``kedro run``."""
    import mlflow

    from music_genre.tracking.live import open_runs, release

    run_id = record.get("run_id")
    if run_id and run_id in open_runs():
        run = mlflow.start_run(run_id=run_id, run_name=record["run_name"], nested=nested)
        release(run_id)  # ended FINISHED (or FAILED) when the with block closes
        return run, True
    return mlflow.start_run(run_name=record["run_name"], nested=nested), False


def _param_value(value: Any) -> Any:
    # MLflow params are strings of at most 6000 characters; tuples and dicts read best as text.
    return value if isinstance(value, int | float | str | bool) else str(value)[:6000]
