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
from collections.abc import Iterator, Mapping
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
)
from music_genre.config import HandcraftedParams, node_settings
from music_genre.contracts import BAD_TRACK_COLUMNS, SPLITS
from music_genre.datasets import FeatureRow, FmaFeaturesFile
from music_genre.infra.location import file_stamp
from music_genre.infra.parallel import TaskFailure, run_tasks
from music_genre.models.evaluation import prediction_table
from music_genre.models.plots import confusion_matrix_figure

# the MLP sweep is its own module
from .mlp import (
    _predict,
    _probabilities,
    _split,
    class_names,
    train_mlp_sweep,
    units_label,
)

logger = logging.getLogger(__name__)

SOURCES = ("fma_csv", "extract")
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
