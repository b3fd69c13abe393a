# Over 400 lines: the CNN pipeline's nodes, item selection to report (Hyperband: tuning.py; streams: streams.py).
"""CNN pipeline nodes: the study's CNN, with and without augmentation, with and without
keras-tuner Hyperband (Tables 3-6); which variants, and their settings, is ``cnn.variants``.

Kedro passes ``params:cnn`` as a dict: each node validates it once into ``CnnParams``
(:func:`cnn_settings`, the variant's own settings applied) and reads typed fields from there.

Spectrograms stream from the catalog's lazy stores (key -> zero-arg loader) through tf.data,
one batch in memory at a time. The nodes compute; models, histories and reports go back to the
catalog. The one exception is keras-tuner's search state, which lives in the folder named by
``cnn.tuning.directory`` so that an interrupted search resumes instead of starting over.

The Hyperband search is :mod:`.tuning`; the settings per variant and the tf.data streams that
search and training share are :mod:`.streams`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from music_genre.audio.augment import (
    MASK_KINDS,
    augmented_key,
)
from music_genre.config import TimingParams
from music_genre.contracts import (
    ACCURACY,
    LOSS,
    SPLITS,
    TEST_ACCURACY,
    TEST_CI_HIGH,
    TEST_CI_LOW,
    TEST_LOSS,
    TEST_TRACKS,
    TRAIN_ACCURACY,
    TRAIN_LOSS,
    VAL_ACCURACY,
    VAL_LOSS,
)
from music_genre.infra.accelerator import log_compute_device
from music_genre.models.cnn import (
    architecture_from_hyperparameters,
    build_cnn,
    compiled_predictor,
    predict_probabilities,
    trainable_parameters,
)
from music_genre.models.evaluation import interval_columns, prediction_table
from music_genre.models.plots import confusion_matrix_figure, learning_curves_figure
from music_genre.models.selection import select_best
from music_genre.tracking.live import epoch_callback, live_run

from .streams import (
    ITEM_COLUMNS,
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


SKIPPED_COLUMNS = ["key", "track_id", "genre", "split", "copy", "reason"]
RESULT_COLUMNS = [
    "variant",
    "params",
    TRAIN_ACCURACY,
    TRAIN_LOSS,
    VAL_ACCURACY,
    VAL_LOSS,
    TEST_ACCURACY,
    TEST_LOSS,
    TEST_CI_LOW,
    TEST_CI_HIGH,
    TEST_TRACKS,
    "inference_seconds",
    "predict_call_seconds",
    "clips_per_second",
]


# ------------------------------------------------------------------------------------------------
# Which spectrograms the CNN reads
# ------------------------------------------------------------------------------------------------
def select_cnn_items(
    tracks: pd.DataFrame,
    log_mel_spectrograms: Store,
    augmented_spectrograms: Store,
    params: Mapping[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every spectrogram the CNN variants read (originals of all splits; the training tracks'
    masked copies when ``augmentation_mode`` is ``materialized``), each loaded once to check it.

    Returns ``(cnn_items, cnn_skipped_items)``: one row per usable spectrogram (key, track_id,
    genre, label, split, copy = original | freq_mask | time_mask), and one row with its reason
    per track or copy left out (no stored spectrogram, unreadable, other shape, not finite,
    an augmented copy of a track that is not a training track).
    """
    mode = cnn_settings(params).augmentation_mode
    if mode == "materialized" and not getattr(augmented_spectrograms, "fingerprint", "x"):
        raise ValueError(
            "cnn.augmentation_mode=materialized trains on the stored augmented copies, and "
            "there are none yet: run `kedro run --pipelines=augmentation` first, or set "
            "cnn.augmentation_mode: on_the_fly (masks drawn during training, nothing stored)."
        )
    missing = {"track_id", "genre", "label", "split"} - set(tracks.columns)
    if missing:
        raise ValueError(f"tracks lacks columns {sorted(missing)}: re-run the ingestion pipeline")
    items: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    shapes: dict[str, tuple[int, ...]] = {}

    def check(store: Store, key: str, row: dict[str, Any], store_name: str) -> None:
        if key not in store:
            skipped.append(
                {
                    **row,
                    "key": key,
                    "reason": f"not in {store_name} (see that pipeline's bad-tracks report)",
                }
            )
            return
        reason, shape = _check_spectrogram(store[key])
        if reason:
            skipped.append({**row, "key": key, "reason": f"{store_name}: {reason}"})
        else:
            shapes[key] = shape
            items.append({**row, "key": key})

    for track in tracks.itertuples(index=False):
        row: dict[str, Any] = {
            "track_id": str(track.track_id),
            "genre": str(track.genre),
            "label": int(track.label),
            "split": str(track.split),
            "copy": "original",
        }
        if row["split"] not in SPLITS:
            skipped.append(
                {
                    **row,
                    "key": row["track_id"],
                    "reason": f"split {row['split']!r} is none of {tuple(SPLITS)}",
                }
            )
            continue
        check(log_mel_spectrograms, row["track_id"], row, "log_mel_spectrograms")
        if row["split"] == "training" and mode == "materialized":
            for kind in MASK_KINDS:
                check(
                    augmented_spectrograms,
                    augmented_key(row["track_id"], kind),
                    {**row, "copy": kind},
                    "augmented_spectrograms",
                )
    if mode == "materialized":
        expected = {item["key"] for item in items} | {s["key"] for s in skipped}
        for key in sorted(set(augmented_spectrograms) - expected):
            skipped.append(
                {
                    "key": key,
                    "track_id": key.rpartition("__")[0],
                    "genre": None,
                    "split": None,
                    "copy": key.rpartition("__")[2],
                    "reason": "augmented copy of no training track in tracks "
                    "(validation and test are never augmented): not used",
                }
            )

    # One shape for all: the most common one; any other is reported, not fed to the model.
    if shapes:
        counts = pd.Series([str(s) for s in shapes.values()]).value_counts()
        common = counts.index[0]
        keep = []
        for item in items:
            if str(shapes[item["key"]]) == common:
                keep.append(item)
            else:
                skipped.append(
                    {
                        **item,
                        "reason": f"shape {shapes[item['key']]} differs from "
                        f"the other spectrograms' {common}: re-run the spectrogram pipeline",
                    }
                )
        items = keep
    # A masked copy without its original would tilt the augmented training set: leave it out.
    originals = {item["track_id"] for item in items if item["copy"] == "original"}
    for item in [item for item in items if item["track_id"] not in originals]:
        items.remove(item)
        skipped.append({**item, "reason": "its original spectrogram is left out"})
    table = pd.DataFrame(items, columns=ITEM_COLUMNS)
    report = pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)
    _validate_items(table, tracks)
    if len(report):
        logger.warning(
            "CNN: %d spectrograms left out (see cnn_skipped_items): %s",
            len(report),
            report["reason"].value_counts().to_dict(),
        )
    logger.info("CNN items: %s", table.groupby(["split", "copy"]).size().to_dict())
    return table, report


def _check_spectrogram(loader: Callable[[], np.ndarray]) -> tuple[str, tuple[int, ...]]:
    try:
        spec = np.asarray(loader(), dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - one unreadable file is reported, never fatal
        return f"unreadable ({type(exc).__name__}: {exc})", ()
    if spec.ndim != 2:
        return f"expected a 2-D (n_mels, frames) array, got shape {spec.shape}", ()
    if not np.isfinite(spec).all():
        return "holds NaN or infinite values", ()
    return "", spec.shape


def _validate_items(items: pd.DataFrame, tracks: pd.DataFrame) -> None:
    labels = sorted(int(v) for v in tracks["label"].unique())
    if labels != list(range(len(labels))):
        raise ValueError(
            f"tracks.label must run 0..n-1, got {labels}: re-run the ingestion pipeline"
        )
    for split in SPLITS:
        if not ((items["split"] == split) & (items["copy"] == "original")).any():
            raise ValueError(f"No usable {split} spectrogram: see cnn_skipped_items for why")
    trained = set(
        items.loc[(items["split"] == "training") & (items["copy"] == "original"), "label"]
    )
    lacking = sorted(set(labels) - trained)
    if lacking:
        genres = tracks.loc[tracks["label"].isin(lacking), "genre"].unique().tolist()
        raise ValueError(
            f"No usable training spectrogram for genres {genres}: the CNN cannot "
            "learn them; see cnn_skipped_items and the spectrogram pipeline's report"
        )


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------
def train_cnn(
    items: pd.DataFrame,
    log_mel_spectrograms: Store,
    augmented_spectrograms: Store,
    params: Mapping[str, Any],
    augmentation_params: dict[str, Any],
    best_hyperparameters: dict[str, Any] | None = None,
    variant: str = "cnn",
) -> tuple[keras.Model, dict[str, Any]]:
    """Train one variant: Adam, sparse categorical cross-entropy, ``training.batch_size``, up
    to ``training.epochs`` epochs, EarlyStopping (``training.early_stopping``: the study's
    monitor=loss, patience 5, best weights restored), validation metrics every epoch.

    Tuned variants take their architecture and learning rate from ``best_hyperparameters``.
    Returns the model and its training log (history, epochs, architecture, timing).
    """
    log_compute_device()
    settings = cnn_settings(params, variant)
    spec = settings.variants[variant]
    training = settings.training
    if spec.tuned:
        if not best_hyperparameters:
            raise ValueError(f"{variant} needs the Hyperband result (best_hyperparameters)")
        architecture = architecture_from_hyperparameters(best_hyperparameters["values"])
    else:
        architecture = {**_given(settings.architecture), "learning_rate": training.learning_rate}
    shape = _input_shape(items, log_mel_spectrograms)
    train_stream, n_train = _training_stream(
        items,
        log_mel_spectrograms,
        augmented_spectrograms,
        settings,
        augmentation_params,
        spec.augmented,
    )
    val_stream, _ = _split_stream(items, log_mel_spectrograms, "validation", training.batch_size)
    keras.utils.set_random_seed(settings.seed)
    model = build_cnn(
        _n_classes(items),
        input_shape=shape,
        quantize=settings.quantize,
        batch_norm_momentum=settings.batch_norm_momentum,
        **architecture,
    )
    stopper = _early_stopping(settings)
    logger.info(
        "Training %s (%d trainable parameters) on %d items for up to %d epochs",
        variant,
        trainable_parameters(model),
        n_train,
        training.epochs,
    )
    start = time.perf_counter()
    # the variant's MLflow child run, open from the first epoch (live curves) until the runs
    # dataset finishes it with the evaluation; ended FAILED if the training raises
    with live_run(f"cnn: {variant}", {"pipeline": "cnn", "variant": variant}) as run_id:
        history = model.fit(
            train_stream,
            validation_data=val_stream,
            epochs=training.epochs,
            callbacks=[stopper, epoch_callback(run_id)],
            shuffle=False,  # the stream shuffles itself
            verbose=settings.verbose,
        )
    log = {
        "mlflow_run_id": run_id,
        "variant": variant,
        "architecture": {**architecture, "filters": [int(f) for f in architecture["filters"]]},
        "batch_size": training.batch_size,
        "max_epochs": training.epochs,
        "early_stopping": _given(training.early_stopping),
        "epochs_trained": len(history.epoch),
        "best_epoch": int(stopper.best_epoch) + 1,
        "training_items": n_train,
        "augmentation_mode": settings.augmentation_mode if spec.augmented else "none",
        "mask_value": augmentation_params.get("mask_value") if spec.augmented else None,
        "input_shape": list(shape),
        "quantize": settings.quantize,
        "batch_norm_momentum": settings.batch_norm_momentum,
        # What produced the input (a spectrogram store records it): prediction must match it.
        "spectrogram_settings": dict(getattr(log_mel_spectrograms, "settings", None) or {}),
        "training_seconds": round(time.perf_counter() - start, 2),
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
    }
    if spec.tuned and best_hyperparameters:  # checked above: a tuned variant has them
        log["hyperband"] = {
            "best_score": best_hyperparameters.get("best_score"),
            "trials": len(best_hyperparameters.get("trials", [])),
            **best_hyperparameters.get("search", {}),
        }
        # every trial's hyperparameters, score and per-epoch metrics: an MLflow artifact
        log["hyperband_trials"] = best_hyperparameters.get("trials", [])
    return model, log


# ------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------
def evaluate_cnn(
    model: keras.Model,
    training_log: dict[str, Any],
    items: pd.DataFrame,
    log_mel_spectrograms: Store,
    params: Mapping[str, Any],
    variant: str = "cnn",
) -> tuple[dict[str, Any], Figure, Figure]:
    """Loss and accuracy on each split's original spectrograms (training too, for every
    variant), the study's single-clip inference time and batched throughput, the test
    confusion matrix and the learning curves."""
    settings = cnn_settings(params, variant)
    batch_size = settings.evaluation.batch_size
    metrics: dict[str, float] = {}
    test: dict[str, list] = {}
    held_out: dict[str, dict[str, list]] = {}
    for split in SPLITS:
        stream, rows = _split_stream(items, log_mel_spectrograms, split, batch_size)
        y_true = rows["label"].to_numpy()
        probabilities, metrics[LOSS[split]], metrics[ACCURACY[split]] = _split_scores(
            model, stream, y_true
        )
        if split == "test":
            test = {
                "track_id": rows["track_id"].tolist(),
                "y_true": y_true.tolist(),
                "y_pred": probabilities.argmax(axis=1).tolist(),
            }
            metrics.update(interval_columns(metrics[TEST_ACCURACY], len(y_true)))
        if split != "training":
            held_out[split] = {
                "track_id": rows["track_id"].astype(str).tolist(),
                "label": y_true.tolist(),
                "probabilities": probabilities.tolist(),
            }
    metrics.update(inference_timing(model, settings.timing))
    class_names = _class_names(items)
    evaluation = {
        "variant": variant,
        "params": trainable_parameters(model),
        "metrics": metrics,
        "class_names": class_names,
        "test_predictions": test,
        # per-track probabilities on validation and test, for paired tests and fusion
        "held_out_probabilities": held_out,
        "training": training_log,
    }
    logger.info("%s: %s", variant, {k: round(v, 4) for k, v in metrics.items()})
    return evaluation, *variant_figures(evaluation)


def inference_timing(model: keras.Model, timing: TimingParams) -> dict[str, float]:
    """``inference_seconds``: mean of ``repeats`` single-clip predictions of the same random
    input (the study's measure; the network alone, on a spectrogram already computed), after
    ``warmup`` untimed calls, through the compiled call that prediction uses
    (:func:`music_genre.models.cnn.compiled_predictor`). ``predict_call_seconds``: the same with
    ``model.predict``, what the study timed (its per-call overhead included).
    ``clips_per_second``: ``throughput_clips`` random clips in batches of ``batch_size``."""
    rng = np.random.default_rng(timing.seed)
    shape = tuple(int(d) for d in model.input_shape[1:])
    one = rng.uniform(-80.0, 0.0, size=(1, *shape)).astype(np.float32)
    predictor = compiled_predictor(model)

    def mean_seconds(call: Any) -> float:
        for _ in range(timing.warmup):
            call()
        times = []
        for _ in range(timing.repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return float(np.mean(times))

    compiled = mean_seconds(lambda: predictor(one).numpy())
    with_predict = mean_seconds(lambda: model.predict(one, verbose=0))
    batch_size = timing.batch_size
    clips = rng.uniform(-80.0, 0.0, size=(timing.throughput_clips, *shape)).astype(np.float32)
    predict_probabilities(predictor, clips[:batch_size], batch_size)
    start = time.perf_counter()
    predict_probabilities(predictor, clips, batch_size)
    elapsed = time.perf_counter() - start
    return {
        "inference_seconds": compiled,
        "predict_call_seconds": with_predict,
        "clips_per_second": len(clips) / elapsed,
    }


def _class_names(items: pd.DataFrame) -> list[str]:
    names = items.drop_duplicates("label").set_index("label")["genre"]
    return [str(names.get(label, f"label {label}")) for label in range(_n_classes(items))]


def variant_figures(evaluation: Mapping[str, Any]) -> tuple[Figure, Figure]:
    """The test confusion matrix and the learning curves of one evaluated variant."""
    variant = evaluation["variant"]
    test = evaluation["test_predictions"]
    confusion = confusion_matrix_figure(
        test["y_true"], test["y_pred"], evaluation["class_names"], title=f"{variant}: test split"
    )
    training = evaluation["training"]
    curves = learning_curves_figure(
        training["history"],
        title=f"{variant}: {training['epochs_trained']} epochs, best {training['best_epoch']}",
    )
    return confusion, curves


# ------------------------------------------------------------------------------------------------
# Report, MLflow runs, best model
# ------------------------------------------------------------------------------------------------
def report_cnn_results(
    *evaluations_then_models: Any,
) -> tuple[pd.DataFrame, list[dict[str, Any]], keras.Model, dict[str, Any]]:
    """Every variant's evaluation, then every variant's model in the same order (the order of
    ``cnn.variants``; the pipeline wires them so) -> ``cnn_results`` (one row per variant), one
    MLflow run record per variant (parameters, metrics, per-epoch history, plots, the model),
    and the variant with the best validation accuracy (ties: lower validation loss, then fewer
    parameters, then table order; :mod:`music_genre.models.selection`) as ``cnn_best_model`` with its
    description."""
    n_variants, odd = divmod(len(evaluations_then_models), 2)
    if odd or not n_variants:
        raise ValueError("report_cnn_results takes each variant's evaluation, then its model")
    evaluations = list(evaluations_then_models[:n_variants])
    models = list(evaluations_then_models[n_variants:])
    results = pd.DataFrame(
        [{"variant": e["variant"], "params": e["params"], **e["metrics"]} for e in evaluations],
        columns=RESULT_COLUMNS,
    )
    runs = [_run_record(e, m) for e, m in zip(evaluations, models, strict=True)]
    best = select_best(results, "cnn_results") or 0  # music_genre.models.selection's rule
    for position, run in enumerate(runs):
        run["selected"] = position == best  # the MLflow tag names the model saved here
    chosen = evaluations[best]
    info = {
        "variant": chosen["variant"],
        "selected_by": VAL_ACCURACY,
        VAL_ACCURACY: chosen["metrics"][VAL_ACCURACY],
        TEST_ACCURACY: chosen["metrics"][TEST_ACCURACY],
        "class_names": chosen["class_names"],
        "input_shape": chosen["training"]["input_shape"],
        "input": "log-mel spectrogram in dB, (n_mels, frames, 1); the model scales it itself",
        "spectrogram_settings": chosen["training"].get("spectrogram_settings", {}),
        "architecture": chosen["training"]["architecture"],
    }
    logger.info(
        "Best CNN variant by validation accuracy: %s (%.4f)", info["variant"], info[VAL_ACCURACY]
    )
    return results, runs, models[best], info


def _run_record(evaluation: Mapping[str, Any], model: keras.Model) -> dict[str, Any]:
    training = evaluation["training"]
    architecture = training["architecture"]
    params: dict[str, Any] = {
        "variant": evaluation["variant"],
        "trainable_params": evaluation["params"],
        "filters": "/".join(str(f) for f in architecture["filters"]),
        "kernel_size": architecture["kernel_size"],
        "dropout": architecture["dropout"],
        "learning_rate": architecture["learning_rate"],
        "batch_size": training["batch_size"],
        "max_epochs": training["max_epochs"],
        "epochs_trained": training["epochs_trained"],
        "best_epoch": training["best_epoch"],
        "early_stopping": training["early_stopping"],
        "training_items": training["training_items"],
        "augmentation_mode": training["augmentation_mode"],
        "mask_value": training["mask_value"],
        "quantize": training["quantize"],
        "batch_norm_momentum": training["batch_norm_momentum"],
    }
    settings = training.get("spectrogram_settings") or {}
    if settings.get("duration_s") and settings.get("sample_rate"):
        from music_genre.audio.training_audio import spectrogram_audio

        params["training_audio"] = spectrogram_audio(settings)  # what the model saw
    for key, value in training.get("hyperband", {}).items():
        params[f"hyperband.{key}"] = value
    confusion, curves = variant_figures(evaluation)
    return {
        "run_name": f"cnn: {evaluation['variant']}",
        "params": params,
        "metrics": dict(evaluation["metrics"]),
        "history": training["history"],
        "figures": {"confusion_matrix.png": confusion, "learning_curves.png": curves},
        "model": model,
        "tags": {"variant": evaluation["variant"]},
        "run_id": training.get("mlflow_run_id"),  # the live run of its training, if any
        "dicts": (
            {"hyperband_trials.json": training["hyperband_trials"]}
            if "hyperband_trials" in training
            else {}
        ),
    }


def best_cnn_predictions(
    cnn_best_model_info: dict[str, Any], *evaluations: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The best variant's (by validation accuracy) per-track predictions on validation and on
    test: track_id, label, predicted, one probability per genre."""
    chosen = next(e for e in evaluations if e["variant"] == cnn_best_model_info["variant"])
    tables = []
    for split in ("validation", "test"):
        part = chosen["held_out_probabilities"][split]
        tables.append(
            prediction_table(
                part["track_id"],
                part["label"],
                np.asarray(part["probabilities"]),
                chosen["class_names"],
            )
        )
    return tables[0], tables[1]
