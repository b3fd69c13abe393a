"""The study's MLP sweep on a standardized feature table (Tables 1-2): one Keras MLP per
``hidden_units`` configuration, its results row, its MLflow run record, and the choice of the
saved model by :mod:`music_genre.models.selection`'s rule."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from music_genre.audio.training_audio import describe_record, short_label
from music_genre.config import MlpSweepParams, node_settings
from music_genre.contracts import (
    ACCURACY,
    LOSS,
    SPLIT_PREFIX,
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
from music_genre.models.evaluation import interval_columns
from music_genre.models.plots import confusion_matrix_figure, learning_curves_figure
from music_genre.models.selection import select_best
from music_genre.tracking.live import epoch_callback, live_run

logger = logging.getLogger(__name__)

# the metric vocabulary of music_genre.contracts
METRIC_COLUMNS = [
    TRAIN_LOSS,
    VAL_LOSS,
    TEST_LOSS,
    TRAIN_ACCURACY,
    VAL_ACCURACY,
    TEST_ACCURACY,
    TEST_CI_LOW,
    TEST_CI_HIGH,
    TEST_TRACKS,
]
RESULT_COLUMNS = [
    "units",
    "parameters",
    *METRIC_COLUMNS,
    # what the features were computed over (music_genre.audio.training_audio), and whether the row is
    # a comparison source whose models are not saved (handcrafted.source lists several)
    "source",
    "audio",
    "training_audio",
    "comparison",
]


def units_label(hidden_units: Sequence[int]) -> str:
    """The study's notation: ``(512, 256)``, ``(64)``."""
    return "(" + ", ".join(str(int(u)) for u in hidden_units) + ")"


def class_names(model_input: pd.DataFrame) -> list[str]:
    """Genre names by label (labels are 0..K-1, sorted genre names, from ingestion)."""
    pairs = (
        model_input.index.to_frame(index=False)[["label", "genre"]]
        .drop_duplicates()
        .sort_values("label")
    )
    labels = pairs["label"].tolist()
    if labels != list(range(len(labels))) or pairs["genre"].duplicated().any():
        raise ValueError(
            "Genre labels must be 0..K-1, one per genre, with every genre having tracks with "
            f"handcrafted features; got (label, genre) {pairs.values.tolist()} (see "
            "data/08_reporting/bad_tracks_handcrafted.csv for tracks without features)."
        )
    return pairs["genre"].tolist()


def _split(model_input: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray]:
    part = model_input[model_input.index.get_level_values("split") == split]
    return part.to_numpy(np.float32), part.index.get_level_values("label").to_numpy(np.int64)


def build_mlp(
    n_inputs: int, n_classes: int, hidden_units: Sequence[int], learning_rate: float, l2: float
):
    """ReLU hidden layers, softmax output, Adam; L2 on every kernel as the study's notebook."""
    import keras

    regularizer = keras.regularizers.L2(l2) if l2 else None
    layers = [keras.Input(shape=(n_inputs,))]
    layers += [
        keras.layers.Dense(int(units), activation="relu", kernel_regularizer=regularizer)
        for units in hidden_units
    ]
    layers.append(  # float32 softmax also under mixed precision (see music_genre.infra.accelerator)
        keras.layers.Dense(
            n_classes, activation="softmax", kernel_regularizer=regularizer, dtype="float32"
        )
    )
    model = keras.Sequential(layers, name="handcrafted_mlp_" + "_".join(map(str, hidden_units)))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",  # = categorical on one-hot labels
        metrics=["accuracy"],
    )
    return model


def _probabilities(model: Any, x: np.ndarray) -> np.ndarray:
    # A direct call: model.predict would trace a new tf.function for every model of the sweep.
    import keras

    return keras.ops.convert_to_numpy(model(x, training=False))


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    return _probabilities(model, x).argmax(axis=1)


def _train_one(
    data: Mapping[str, tuple[np.ndarray, np.ndarray]],
    names: list[str],
    hidden_units: Sequence[int],
    params: MlpSweepParams,
) -> tuple[dict[str, Any], Any]:
    """One configuration, its MLflow child run open from the first epoch (live curves; the
    runs dataset finishes it), ended FAILED if the training raises."""
    label = units_label(hidden_units)
    tags = {"pipeline": "handcrafted", "units": label}
    with live_run(f"handcrafted mlp {label}", tags) as run_id:
        record, model = _fit_one(data, names, hidden_units, params, run_id)
    if run_id is not None:
        record["run_id"] = run_id
    return record, model


def _fit_one(
    data: Mapping[str, tuple[np.ndarray, np.ndarray]],
    names: list[str],
    hidden_units: Sequence[int],
    params: MlpSweepParams,
    run_id: str | None,
) -> tuple[dict[str, Any], Any]:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(params.seed)  # each configuration reproducible alone
    x_train, y_train = data["training"]
    model = build_mlp(
        x_train.shape[1],
        len(names),
        hidden_units,
        params.learning_rate,
        params.l2,
    )
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=params.patience, restore_best_weights=True
    )
    # tf.data instead of NumPy arrays: the same reshuffled batches every epoch, with about half
    # the per-epoch overhead, which dominates on small data.
    training = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=params.seed, reshuffle_each_iteration=True)
        .batch(params.batch_size)
    )
    validation = tf.data.Dataset.from_tensor_slices(data["validation"]).batch(1024)
    fit = model.fit(
        training,
        epochs=params.max_epochs,
        validation_data=validation,
        callbacks=[stopper, epoch_callback(run_id)],
        shuffle=False,  # the dataset reshuffles each epoch
        verbose=0,
    )
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    metrics = {}
    for split, (x, y) in data.items():
        loss, accuracy = model.evaluate(x, y, batch_size=1024, verbose=0)
        metrics[LOSS[split]] = float(loss)
        metrics[ACCURACY[split]] = float(accuracy)
    label = units_label(hidden_units)
    x_test, y_test = data["test"]
    predicted = _predict(model, x_test)
    metrics.update(interval_columns(metrics[TEST_ACCURACY], len(y_test)))
    record = {
        "run_name": f"handcrafted mlp {label}",
        "params": {
            "units": label,
            "hidden_layers": len(hidden_units),
            "parameters": int(model.count_params()),
            **params.model_dump(exclude={"hidden_units"}),
            "epochs_trained": len(history["loss"]),
            "best_epoch": int(np.argmin(history["val_loss"])) + 1,
            **{f"{SPLIT_PREFIX[s]}_tracks": len(data[s][1]) for s in SPLITS},
        },
        "metrics": metrics,
        "history": history,
        "figures": {
            "learning_curves.png": learning_curves_figure(history, f"Handcrafted MLP {label}"),
            "confusion_matrix_test.png": confusion_matrix_figure(
                y_test, predicted, names, f"Handcrafted MLP {label}: test"
            ),
        },
        "model": model,
        "tags": {"model": "mlp", "features": "handcrafted", "units": label},
    }
    logger.info(
        "MLP %s: %d parameters, %d epochs, val acc %.3f, test acc %.3f",
        label,
        record["params"]["parameters"],
        record["params"]["epochs_trained"],
        metrics[VAL_ACCURACY],
        metrics[TEST_ACCURACY],
    )
    return record, model


def train_mlp_sweep(
    model_input: pd.DataFrame,
    params: Mapping[str, Any] | MlpSweepParams,
    audio: Mapping[str, Any] | None = None,
    comparison: bool = False,
) -> tuple[list[dict[str, Any]], pd.DataFrame, Any]:
    """Train one MLP per ``hidden_units`` configuration (Tables 1-2 of the study).

    Returns the MLflow run records (one per configuration), the results table (the study's
    columns, then what the features were computed over: ``audio``, a feature audio record of
    :mod:`music_genre.audio.training_audio`) and the best model by validation accuracy (ties: lower
    validation loss, then fewer parameters, then list order; :mod:`music_genre.models.selection`).
    ``comparison``: the rows of a further ``handcrafted.source``, whose models are not saved.
    """
    mlp = node_settings(MlpSweepParams, params, "handcrafted.mlp")
    from music_genre.infra.accelerator import log_compute_device

    log_compute_device()
    audio = dict(audio or {})
    audio_columns = {
        "source": audio.get("source"),
        "audio": short_label(audio) if audio else None,
        "training_audio": describe_record(audio) if audio else None,
        "comparison": bool(comparison),
    }
    names = class_names(model_input)
    data = {split: _split(model_input, split) for split in SPLITS}
    records, rows, models = [], [], []
    for hidden_units in mlp.hidden_units:
        record, model = _train_one(data, names, hidden_units, mlp)
        if audio:
            # MLflow: what this model's features were computed over, as a param and tags
            record["params"]["source"] = audio_columns["source"]
            record["params"]["training_audio"] = audio_columns["training_audio"]
            record["tags"]["features_over"] = str(audio.get("features_over"))
            record["tags"]["source"] = str(audio_columns["source"])
        if comparison:
            record["tags"]["comparison"] = "true"
            record["run_name"] += f" [{audio_columns['source']}, comparison]"
        records.append(record)
        models.append(model)
        rows.append(
            {
                "units": record["params"]["units"],
                "parameters": record["params"]["parameters"],
                **record["metrics"],
                **audio_columns,
            }
        )
    results = pd.DataFrame(rows).reindex(columns=RESULT_COLUMNS)
    best = select_best(results, "handcrafted_results") or 0  # music_genre.models.selection's rule
    for position, record in enumerate(records):  # the pipeline's choice (tag `selected`)
        record["selected"] = position == best and not comparison
    logger.info(
        "Best handcrafted MLP by validation accuracy%s: %s",
        f" ({audio_columns['source']})" if audio else "",
        results.loc[best, "units"],
    )
    return records, results, models[best]
