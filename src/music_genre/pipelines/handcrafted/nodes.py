# Over 400 lines: the handcrafted pipeline, feature extraction to the MLP sweep and held-out predictions, one job per node.
"""Handcrafted features: FMA's 518 features -> standardized matrix -> the study's MLP sweep.

The study (Tables 1-2) trained a Keras MLP on FMA's precomputed features for nine hidden-layer
configurations; ``handcrafted.source`` chooses FMA's ``features.csv`` (``fma_csv``: FMA computed
it over the full-length tracks) or features computed with FMA's recipe from the collection's own
audio files (``extract``, resumable per track: on fma_small, the 30-s clips the other pipelines
read), or lists both: the first is the saved model, the others comparison rows. Every row and
model says what its features were computed over (:mod:`music_genre.audio.training_audio`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from music_genre.audio.features import (
    N_FEATURES,
    extract_features,
    feature_columns,
    feature_names,
    settings_fingerprint,
)
from music_genre.audio.training_audio import (
    describe_record,
    feature_audio_record,
    short_label,
)
from music_genre.config import HandcraftedParams, MlpSweepParams, node_settings
from music_genre.contracts import BAD_TRACK_COLUMNS, SPLIT_PREFIX, SPLITS
from music_genre.datasets import FeatureRow, FmaFeaturesFile
from music_genre.infra.location import file_stamp
from music_genre.infra.parallel import TaskFailure, run_tasks
from music_genre.models.evaluation import interval_columns, prediction_table
from music_genre.models.plots import confusion_matrix_figure, learning_curves_figure
from music_genre.models.selection import select_best

logger = logging.getLogger(__name__)

SOURCES = ("fma_csv", "extract")
RESULT_COLUMNS = [
    "units",
    "parameters",
    "train_loss",
    "val_loss",
    "test_loss",
    "train_acc",
    "val_acc",
    "test_acc",
    "test_acc_ci_low",
    "test_acc_ci_high",
    "n_test",
    # what the features were computed over (music_genre.audio.training_audio), and whether the row is
    # a comparison source whose models are not saved (handcrafted.source lists several)
    "source",
    "audio",
    "training_audio",
    "comparison",
]
MODEL_INPUT_INDEX = ["track_id", "split", "label", "genre"]


# What a node receives as ``params:handcrafted``: Kedro's dict, or the validated model.
Params = Mapping[str, Any] | HandcraftedParams


def _settings(params: Params) -> HandcraftedParams:
    return node_settings(HandcraftedParams, params)


# --- features ------------------------------------------------------------------------------


def track_provenance(path: str, settings: Mapping[str, Any]) -> str:
    """What a stored row must match to be reused: extraction settings and the exact file."""
    try:
        size = file_stamp(path)[0]  # a local path or a URL
    except OSError:
        size = None
    return json.dumps(
        {"settings": settings_fingerprint(settings), "path": str(path), "bytes": size},
        sort_keys=True,
    )


def _extract_row(path: str, provenance: str, settings: Mapping[str, Any]) -> FeatureRow:
    """One track's row, or its failure with the reason (one bad track never stops the run)."""
    try:
        values = extract_features(path, settings).to_numpy(dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - reported in bad_tracks_handcrafted.csv
        return FeatureRow(np.empty(0, np.float32), provenance, f"{type(exc).__name__}: {exc}")
    return FeatureRow(values, provenance)


def extract_handcrafted_features(
    tracks: pd.DataFrame, stored_provenance: Mapping[str, str], params: Params
) -> Iterator[dict[str, FeatureRow]]:
    """Compute the 518 features of every track not already in the store, in parallel.
    ``stored_provenance``: track -> provenance of its stored successful row (the store's index).

    A generator: each batch of ``extraction.save_every`` finished tracks is yielded and saved at
    once, so an interrupted run keeps its work; stored rows with the same provenance are reused,
    failed ones are retried. With ``source: fma_csv`` nothing is computed.
    """
    handcrafted = _settings(params)
    if "extract" not in handcrafted.sources:
        logger.info("handcrafted.source=%s: no feature extraction from audio", handcrafted.source)
        yield {}
        return
    settings = handcrafted.extraction.model_dump()
    pending = []
    for track_id, path in zip(tracks["track_id"], tracks["path"], strict=True):
        provenance = track_provenance(path, settings)
        if stored_provenance.get(track_id) != provenance:
            pending.append((track_id, path, provenance))
    logger.info(
        "Handcrafted features: %d of %d tracks to extract (%d reused from earlier runs)",
        len(pending),
        len(tracks),
        len(tracks) - len(pending),
    )
    if not pending:
        yield {}
        return
    save_every = handcrafted.extraction.save_every
    tasks = [(track_id, (path, provenance, settings)) for track_id, path, provenance in pending]
    provenances = {track_id: provenance for track_id, _, provenance in pending}
    results = run_tasks(_extract_row, tasks, handcrafted.extraction.workers)
    batch: dict[str, FeatureRow] = {}
    for track_id, row in tqdm(
        results, total=len(pending), desc="handcrafted features", unit="track"
    ):
        if isinstance(row, TaskFailure):  # its worker crashed twice: reported like any failure
            row = FeatureRow(np.empty(0, np.float32), provenances[track_id], row.reason)
        batch[track_id] = row
        if len(batch) >= save_every:
            yield batch
            batch = {}
    if batch:
        yield batch


def _bad_rows(tracks: pd.DataFrame, reasons: Mapping[str, str]) -> pd.DataFrame:
    bad = tracks[tracks["track_id"].isin(list(reasons))].copy()
    bad["stage"] = "handcrafted_features"
    bad["reason"] = bad["track_id"].map(reasons)
    return bad.reindex(columns=BAD_TRACK_COLUMNS)


def _table_from_rows(
    tracks: pd.DataFrame, rows: Mapping[str, FeatureRow], settings: Mapping[str, Any]
) -> tuple[pd.DataFrame, dict[str, str]]:
    values, kept, reasons = [], [], {}
    for track_id, path in zip(tracks["track_id"], tracks["path"], strict=True):
        row = rows.get(track_id)
        if row is None or row.provenance != track_provenance(path, settings):
            reasons[track_id] = (
                "no features extracted with the current handcrafted.extraction settings "
                "(run the extract_handcrafted_features node)"
            )
        elif row.failed:
            reasons[track_id] = f"feature extraction failed: {row.error}"
        elif row.values.shape != (N_FEATURES,):
            reasons[track_id] = f"stored row has {row.values.size} values, expected {N_FEATURES}"
        else:
            values.append(row.values)
            kept.append(track_id)
    table = pd.DataFrame(
        np.vstack(values) if values else np.empty((0, N_FEATURES), np.float32),
        index=pd.Index(kept, name="track_id"),
        columns=feature_columns(),
    )
    return table, reasons


def _table_from_fma(
    tracks: pd.DataFrame, fma_features: FmaFeaturesFile
) -> tuple[pd.DataFrame, dict[str, str]]:
    table = fma_features.read(tracks["track_id"])
    table = table[~table.index.duplicated(keep="first")]
    missing = set(tracks["track_id"]) - set(table.index)
    reasons = {t: f"not in FMA's {fma_features.path}" for t in missing}
    return table.reindex([t for t in tracks["track_id"] if t not in missing]), reasons


def build_feature_table(
    tracks: pd.DataFrame,
    feature_rows: dict[str, FeatureRow],
    fma_features: FmaFeaturesFile,
    params: Params,
    source: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row of 518 finite float32 features per usable track (FMA's column layout), indexed
    by track id, and the tracks without one with the reason (``bad_tracks_handcrafted``).
    ``source``: one of ``handcrafted.source``'s entries; the saved model's (the first) unless
    named."""
    handcrafted = _settings(params)
    source = source or handcrafted.sources[0]
    if source == "extract":
        table, reasons = _table_from_rows(tracks, feature_rows, handcrafted.extraction.model_dump())
    else:
        table, reasons = _table_from_fma(tracks, fma_features)
    finite = np.isfinite(table.to_numpy()).all(axis=1)
    for track_id in table.index[~finite]:
        row = table.loc[track_id]
        names = sorted({".".join(c[:2]) for c in row.index[~np.isfinite(row.to_numpy())]})
        reasons[track_id] = f"non-finite feature values in {', '.join(names[:5])}"
    table = table[finite].astype(np.float32)
    bad = _bad_rows(tracks, reasons).sort_values("track_id").reset_index(drop=True)
    logger.info(
        "Handcrafted feature table (%s): %d tracks x %d features; %d tracks reported in "
        "bad_tracks_handcrafted",
        source,
        len(table),
        table.shape[1],
        len(bad),
    )
    if table.empty:
        raise ValueError(
            f"No track has usable handcrafted features (source {source}); the "
            "reasons are in data/08_reporting/bad_tracks_handcrafted.csv."
        )
    return table, bad


def standardize_features(
    features: pd.DataFrame, tracks: pd.DataFrame
) -> tuple[pd.DataFrame, StandardScaler]:
    """Standardize with the mean and deviation of the training split only (as the study).

    Returns the model input (the standardized features indexed by track_id, split, label,
    genre) and the fitted scaler, whose ``feature_names_in_`` are ``features.feature_names()``.
    """
    meta = tracks.set_index("track_id").loc[features.index, ["split", "label", "genre"]]
    is_train = (meta["split"] == "training").to_numpy()
    for split in SPLITS:
        if not (meta["split"] == split).any():
            raise ValueError(
                f"No {split!r} track has handcrafted features: the MLP needs training, "
                "validation and test tracks (see data/08_reporting/bad_tracks_handcrafted.csv)."
            )
    named = pd.DataFrame(
        features.to_numpy(dtype=np.float64), columns=feature_names(features.columns)
    )
    scaler = StandardScaler().fit(named[is_train])
    standardized = scaler.transform(named).astype(np.float32)
    index = pd.MultiIndex.from_arrays(
        [features.index, meta["split"], meta["label"].astype("int64"), meta["genre"]],
        names=MODEL_INPUT_INDEX,
    )
    model_input = pd.DataFrame(standardized, index=index, columns=features.columns)
    logger.info(
        "Standardized %d tracks with training-split statistics (%d training tracks)",
        len(model_input),
        int(is_train.sum()),
    )
    return model_input, scaler


# --- MLP -----------------------------------------------------------------------------------


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
        callbacks=[stopper],
        shuffle=False,  # the dataset reshuffles each epoch
        verbose=0,
    )
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    metrics = {}
    for split, (x, y) in data.items():
        loss, accuracy = model.evaluate(x, y, batch_size=1024, verbose=0)
        metrics[f"{SPLIT_PREFIX[split]}_loss"] = float(loss)
        metrics[f"{SPLIT_PREFIX[split]}_acc"] = float(accuracy)
    label = units_label(hidden_units)
    x_test, y_test = data["test"]
    predicted = _predict(model, x_test)
    metrics.update(interval_columns(metrics["test_acc"], len(y_test)))
    record = {
        "run_name": f"handcrafted mlp {label}",
        "params": {
            "units": label,
            "hidden_layers": len(hidden_units),
            "parameters": int(model.count_params()),
            **params.model_dump(exclude={"hidden_units"}),
            "epochs_trained": len(history["loss"]),
            "best_epoch": int(np.argmin(history["val_loss"])) + 1,
            **{f"n_{SPLIT_PREFIX[s]}": len(data[s][1]) for s in SPLITS},
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
        metrics["val_acc"],
        metrics["test_acc"],
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
    records[best]["tags"]["best_by_val_acc"] = "true"
    for position, record in enumerate(records):  # the pipeline's choice (tag `selected`)
        record["selected"] = position == best and not comparison
    logger.info(
        "Best handcrafted MLP by validation accuracy%s: %s",
        f" ({audio_columns['source']})" if audio else "",
        results.loc[best, "units"],
    )
    return records, results, models[best]


def feature_audio(
    source: str, params: Params, tracks: pd.DataFrame, model_input: pd.DataFrame
) -> dict[str, Any]:
    """The feature audio record of a model trained on ``model_input`` from ``source``: the
    extraction settings and the median length of the training files it read."""
    training = model_input.index.get_level_values("split") == "training"
    ids = model_input.index.get_level_values("track_id")[training]
    durations = None
    if "duration_s" in tracks:
        durations = tracks.set_index("track_id").loc[ids, "duration_s"].dropna().to_numpy()
    return feature_audio_record(source, _settings(params).extraction.model_dump(), durations)


def comparison_feature_tables(
    tracks: pd.DataFrame,
    feature_rows: dict[str, FeatureRow],
    fma_features: FmaFeaturesFile,
    params: Params,
) -> dict[str, pd.DataFrame]:
    """The feature tables of the further sources of ``handcrafted.source`` (a list such as
    ``[fma_csv, extract]``): source -> table; ``{}`` for a single source. Their tracks without
    features are logged (the saved model's are in ``bad_tracks_handcrafted``)."""
    tables = {}
    handcrafted = _settings(params)
    for source in handcrafted.sources[1:]:
        table, bad = build_feature_table(tracks, feature_rows, fma_features, handcrafted, source)
        if len(bad):
            logger.warning(
                "Comparison source %s: %d tracks without features left out (e.g. %s: %s)",
                source,
                len(bad),
                bad["track_id"].iloc[0],
                bad["reason"].iloc[0],
            )
        tables[source] = table
    return tables


def train_handcrafted_models(
    model_input: pd.DataFrame,
    comparison_tables: Mapping[str, pd.DataFrame],
    tracks: pd.DataFrame,
    params: Params,
) -> tuple[list[dict[str, Any]], pd.DataFrame, Any, dict[str, Any]]:
    """The MLP sweep on the saved model's source, then on each comparison source (same tracks'
    splits, same configurations), so that a reader can tell "more audio" from "a better model"
    (FMA's features.csv saw whole tracks; extracted features the clips).

    Returns every sweep's MLflow records and results rows (columns ``source``, ``audio``,
    ``training_audio``, ``comparison``), the saved model (the best of the first source by
    validation accuracy) and its record ``handcrafted_model_info``: what its features were
    computed over, which the prediction command reproduces."""
    handcrafted = _settings(params)
    audio = feature_audio(handcrafted.sources[0], handcrafted, tracks, model_input)
    records, results, model = train_mlp_sweep(model_input, handcrafted.mlp, audio)
    tables = [results]
    for source, table in comparison_tables.items():
        extra_input, _ = standardize_features(table, tracks)
        extra_records, extra_results, _ = train_mlp_sweep(
            extra_input,
            handcrafted.mlp,
            feature_audio(source, handcrafted, tracks, extra_input),
            comparison=True,
        )
        records += extra_records
        tables.append(extra_results)
    hidden = [layer.units for layer in model.layers[:-1]]
    info = {
        **audio,
        "description": describe_record(audio),
        "units": units_label(hidden),
        "class_names": class_names(model_input),
    }
    return records, pd.concat(tables, ignore_index=True), model, info


def plot_confusion_matrix(model: Any, model_input: pd.DataFrame) -> Figure:
    """The saved best model's confusion matrix on the test split."""
    x_test, y_test = _split(model_input, "test")
    predicted = _predict(model, x_test)
    hidden = [layer.units for layer in model.layers[:-1]]
    return confusion_matrix_figure(
        y_test,
        predicted,
        class_names(model_input),
        f"Handcrafted MLP {units_label(hidden)} (best by validation accuracy): test",
    )


def predict_held_out_tracks(
    model: Any, model_input: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The best MLP's per-track predictions on validation and on test (track_id, label,
    predicted, one probability per genre): the paired tests of the report and the fusion
    pipeline use them."""
    names = class_names(model_input)
    tables = []
    for split in ("validation", "test"):
        part = model_input[model_input.index.get_level_values("split") == split]
        tables.append(
            prediction_table(
                part.index.get_level_values("track_id"),
                part.index.get_level_values("label"),
                _probabilities(model, part.to_numpy(np.float32)),
                names,
            )
        )
    return tables[0], tables[1]
