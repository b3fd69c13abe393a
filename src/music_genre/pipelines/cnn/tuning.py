"""The CNN's Hyperband search (keras-tuner): resumable in ``cnn.tuning.directory`` (a folder per
search fingerprint), one terminal line per trial and the detail in the log file."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import numpy as np
import pandas as pd

from music_genre.audio.augment import (
    augmentation_settings,
)
from music_genre.config import CnnParams
from music_genre.contracts import TEST_ACCURACY, TEST_LOSS
from music_genre.infra.accelerator import log_compute_device
from music_genre.models.cnn import (
    StudyCnnHyperModel,
)
from music_genre.models.evaluation import interval_columns
from music_genre.tracking import live

from .streams import (
    Store,
    _early_stopping,
    _given,
    _input_shape,
    _n_classes,
    _split_scores,
    _split_stream,
    _training_stream,
    cnn_settings,
)

logger = logging.getLogger(__name__)
# Hyperband's detail (every trial's hyperparameters, every epoch's metrics): conf/logging.yml
# sends it to the log file only; the terminal gets one line per trial from ``logger``.
trial_logger = logging.getLogger(f"{__name__}.trials")


# ------------------------------------------------------------------------------------------------
# Hyperband
# ------------------------------------------------------------------------------------------------
def tune_cnn_hyperparameters(
    items: pd.DataFrame,
    log_mel_spectrograms: Store,
    augmented_spectrograms: Store,
    params: Mapping[str, Any],
    augmentation_params: dict[str, Any],
    variant: str,
) -> dict[str, Any]:
    """keras-tuner Hyperband over the study's search space, objective validation accuracy.
    Each trial's MLflow run also reports its model's test accuracy, which never chooses.

    The search state lives in ``<tuning.directory>/<variant>_<fingerprint>``; the fingerprint
    hashes the search settings and the training and validation items, so an interrupted search
    with the same inputs resumes (finished trials are kept, the interrupted one is retried),
    while changed inputs start a fresh search in a new folder instead of reusing stale trials.
    """
    log_compute_device()
    settings = cnn_settings(params, variant)
    tuning = settings.tuning
    search_space = _given(tuning.search_space)
    shape = _input_shape(items, log_mel_spectrograms)
    train_stream, n_train = _training_stream(
        items,
        log_mel_spectrograms,
        augmented_spectrograms,
        settings,
        augmentation_params,
        settings.variants[variant].augmented,
    )
    val_stream, _ = _split_stream(
        items, log_mel_spectrograms, "validation", settings.training.batch_size
    )
    test_stream, test_rows = _split_stream(
        items, log_mel_spectrograms, "test", settings.evaluation.batch_size
    )
    fingerprint = search_fingerprint(items, settings, augmentation_params, variant)
    project = f"{variant}_{fingerprint}"
    keras.utils.set_random_seed(settings.seed)
    tuner = _LoggingHyperband(
        variant,
        StudyCnnHyperModel(
            _n_classes(items),
            search_space,
            input_shape=shape,
            quantize=settings.quantize,
            batch_norm_momentum=settings.batch_norm_momentum,
        ),
        objective=tuning.objective,
        max_epochs=tuning.max_epochs,
        factor=tuning.factor,
        hyperband_iterations=tuning.hyperband_iterations,
        seed=settings.seed,
        directory=tuning.directory,
        project_name=project,
        overwrite=False,
        test_data=(test_stream, test_rows["label"].to_numpy()),
    )
    done = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    logger.info(
        "Hyperband %s: %s/%s on %d training items (%d trials already done)",
        variant,
        tuning.directory,
        project,
        n_train,
        done,
    )
    callbacks = [_early_stopping(settings)] if tuning.early_stopping else []
    tuner.search(
        train_stream,
        validation_data=val_stream,
        callbacks=callbacks,
        shuffle=False,
        # keras-tuner's display (a hyperparameter table per trial) and Keras' epoch lines would
        # flood the terminal: _LoggingHyperband logs one line per trial instead.
        verbose=0,
    )
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    for trial in trials:
        if trial.status != "COMPLETED":
            logger.warning(
                "Hyperband %s: trial %s ended %s: %s",
                variant,
                trial.trial_id,
                trial.status,
                (trial.message or "").strip().splitlines()[-1:],
            )
    # Only a completed trial may win (get_best_trials pads with unfinished ones), and a tie goes
    # to the earlier trial: get_best_trials breaks ties by the order a resumed search globbed
    # the trial folders in, which differs between processes (a resume once chose another).
    completed = [t for t in trials if t.status == "COMPLETED"]  # trials: in trial_id order
    best = sorted(  # stable: equal scores keep trial_id order
        completed, key=lambda t: t.score, reverse=tuner.oracle.objective.direction == "max"
    )
    if not best:
        raise RuntimeError(
            f"Hyperband for {variant} completed no trial (see the warnings above "
            f"and {tuning.directory}/{project}/trial_*/trial.json)"
        )
    return {
        "variant": variant,
        "objective": tuning.objective,
        "values": _search_values(best[0].hyperparameters.values),
        "best_score": _float_or_none(best[0].score),
        "best_trial_id": best[0].trial_id,
        "trials": [
            {
                "trial_id": t.trial_id,
                "status": t.status,
                "score": _float_or_none(t.score),
                "epochs": t.hyperparameters.values.get("tuner/epochs"),
                "values": _search_values(t.hyperparameters.values),
                "history": tuner.history(t.trial_id),  # per epoch, as the log file has it
            }
            for t in trials
        ],
        "search": {
            "max_epochs": tuning.max_epochs,
            "factor": tuning.factor,
            "hyperband_iterations": tuning.hyperband_iterations,
            "seed": settings.seed,
            "project_dir": f"{tuning.directory}/{project}",
            "training_items": n_train,
            "search_space": search_space,
        },
    }


class _LoggingHyperband(keras_tuner.Hyperband):
    """Hyperband that reports each trial as one short log line (its number, status, objective
    and duration) and sends the trial's hyperparameters and per-epoch metrics
    to ``trial_logger``, instead of keras-tuner's and Keras' prints to stdout (search with
    ``verbose=0``). Each trial's per-epoch metrics are kept beside its trial.json (which keeps
    only the best epoch's), so that a resumed search reports them too.

    ``test_data`` (the test split: what ``model.predict`` takes, and its labels) scores each
    completed trial's model for its MLflow run only."""

    HISTORY_FILE = "epoch_metrics.json"

    def __init__(
        self, variant: str, *args: Any, test_data: tuple[Any, np.ndarray], **kwargs: Any
    ) -> None:
        self.variant = variant
        self.test_data = test_data
        self.histories: dict[str, dict[str, list[float]]] = {}
        self._started: dict[str, float] = {}
        # trial id -> its MLflow child run (live curves; none without an active run)
        self._runs: dict[str, str | None] = {}
        # trial id -> the model it trains, scored on test at the trial's end
        self._models: dict[str, keras.Model] = {}
        printed = io.StringIO()  # keras-tuner prints "Reloading Tuner from ..." on a resume
        with contextlib.redirect_stdout(printed):
            super().__init__(*args, **kwargs)
        for line in printed.getvalue().splitlines():
            if line.strip():
                trial_logger.info("Hyperband %s: %s", variant, line.strip())

    def on_trial_begin(self, trial: Any) -> None:
        super().on_trial_begin(trial)
        self._started[trial.trial_id] = time.perf_counter()
        self.histories[trial.trial_id] = {}  # a retried trial starts over
        self._runs[trial.trial_id] = live.open_run(
            f"cnn: {self.variant} hyperband trial {trial.trial_id}",
            {
                "pipeline": "cnn",
                "variant": self.variant,
                "hyperband_trial": trial.trial_id,
                "selected": "false",  # a search trial, never a saved model
            },
        )
        trial_logger.info(
            "Hyperband %s: trial %s starts: %s",
            self.variant,
            trial.trial_id,
            json.dumps(trial.hyperparameters.values, sort_keys=True),
        )

    def on_epoch_end(self, trial: Any, model: Any, epoch: int, logs: Any = None) -> None:
        super().on_epoch_end(trial, model, epoch, logs=logs)
        self._models[trial.trial_id] = model
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        live.log_epoch(self._runs.get(trial.trial_id), epoch, metrics)
        history = self.histories.setdefault(trial.trial_id, {})
        for key, value in metrics.items():
            history.setdefault(key, []).append(value)
        trial_logger.info(
            "Hyperband %s: trial %s epoch %d/%s: %s",
            self.variant,
            trial.trial_id,
            epoch + 1,
            trial.hyperparameters.values.get("tuner/epochs", "?"),
            " ".join(f"{k}={v:.4g}" for k, v in metrics.items()),
        )

    def on_trial_end(self, trial: Any) -> None:
        history = self.histories.get(trial.trial_id, {})
        path = Path(self.get_trial_dir(trial.trial_id)) / self.HISTORY_FILE
        path.write_text(json.dumps(history))
        super().on_trial_end(trial)  # the oracle scores the trial here
        ended = self.oracle.get_trial(trial.trial_id)
        self._end_run(ended, self._models.pop(trial.trial_id, None))
        seconds = time.perf_counter() - self._started.pop(trial.trial_id, time.perf_counter())
        ranked = self.oracle.get_best_trials(len(self.oracle.trials))
        best = next((t.score for t in ranked if t.status == "COMPLETED"), None)
        name = self.oracle.objective.name
        score = "-" if ended.score is None else f"{ended.score:.3f}"
        best_score = "-" if best is None else f"{best:.3f}"
        logger.info(
            "Hyperband %s: trial %s %s, %s %s (best %s), %d epochs, %.0f s",
            self.variant,
            trial.trial_id,
            ended.status,
            name,
            score,
            best_score,
            len(self.histories.get(trial.trial_id, {}).get(name, [])),
            seconds,
        )

    def _end_run(self, trial: Any, model: keras.Model | None) -> None:
        """The trial's run: its hyperparameters, its objective's score, the test metrics of a
        completed trial (:meth:`_test_metrics`), ended FINISHED when the trial completed, else
        FAILED."""
        run_id = self._runs.pop(trial.trial_id, None)
        if run_id is None:
            return
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        for key, value in trial.hyperparameters.values.items():
            client.log_param(run_id, key.replace("/", "."), value)
        metrics = {} if trial.score is None else {self.oracle.objective.name: float(trial.score)}
        if trial.status == "COMPLETED" and model is not None:
            metrics.update(self._test_metrics(trial, model))
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        live.end_run(run_id, live.FINISHED if trial.status == "COMPLETED" else live.FAILED)

    def _test_metrics(self, trial: Any, model: keras.Model) -> dict[str, float]:
        """``test_accuracy``, ``test_loss``, its interval and ``test_tracks`` of the trial's
        model with the weights of its best epoch (keras-tuner's checkpoint, where its objective
        score comes from), loaded into the trained model: building another one would draw
        from the random state that the next trials' initial weights come from."""
        # Reported only: the search and the best trial are chosen on validation alone.
        model.load_weights(self._get_checkpoint_fname(trial.trial_id))
        inputs, labels = self.test_data
        _, loss, accuracy = _split_scores(model, inputs, labels)
        return {TEST_ACCURACY: accuracy, TEST_LOSS: loss, **interval_columns(accuracy, len(labels))}

    def history(self, trial_id: str) -> dict[str, list[float]]:
        """The per-epoch metrics of a trial, this search's or an earlier one's ({} if none)."""
        if trial_id in self.histories:
            return self.histories[trial_id]
        path = Path(self.get_trial_dir(trial_id)) / self.HISTORY_FILE
        return json.loads(path.read_text()) if path.is_file() else {}


def search_fingerprint(
    items: pd.DataFrame,
    params: Mapping[str, Any] | CnnParams,
    augmentation_params: Mapping[str, Any],
    variant: str,
) -> str:
    """12 hex digits naming one search: its settings and the items it reads (the settings as
    configured, defaults left out, so the searches of earlier runs keep their folders)."""
    settings = cnn_settings(params, variant)
    augmented = settings.variants[variant].augmented
    used = items[items["split"].isin(["training", "validation"])]
    training = _given(settings.training)
    payload = {
        "variant": variant,
        "tuning": {k: v for k, v in _given(settings.tuning).items() if k != "directory"},
        # what a trial's training depends on (not the final training's epochs or learning rate)
        "training": {k: v for k, v in training.items() if k in ("batch_size", "early_stopping")},
        "seed": settings.seed,
        "quantize": settings.quantize,
        "batch_norm_momentum": settings.batch_norm_momentum,
        "augmentation_mode": settings.augmentation_mode if augmented else None,
        "augmentation": augmentation_settings(augmentation_params) if augmented else None,
        "items": used[["key", "label", "split", "copy"]].to_numpy().tolist(),
    }
    blob = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _search_values(values: Mapping[str, Any]) -> dict[str, Any]:
    # keras-tuner adds its own bookkeeping (tuner/epochs, tuner/bracket, ...): not hyperparameters.
    return {k: v for k, v in values.items() if not k.startswith("tuner/")}


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
