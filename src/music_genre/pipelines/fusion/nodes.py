"""Fusion nodes: fit a combiner of the pipelines' best models on validation, evaluate on test.

Validation predictions: the handcrafted MLP and the CNN were trained on the training split (and
chosen on validation); the transfer model was refit on training + validation, so its validation
predictions are out-of-fold cross-validation predictions (see the transfer pipeline). The
combiners see validation only; each method's selection score is a cross-validated accuracy on
the validation tracks, so neither is chosen on what fitted it, and never on test.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from music_genre.config import FusionParams, node_settings
from music_genre.contracts import (
    TEST_ACCURACY,
    TEST_CI_HIGH,
    TEST_CI_LOW,
    TEST_TRACKS,
    VAL_ACCURACY,
)
from music_genre.models.evaluation import (
    class_names_of,
    interval_columns,
    prediction_table,
    probability_matrix,
)
from music_genre.models.fusion import (
    METHODS,
    best_weights,
    cross_validated_accuracy,
    fit_stacker,
    fused_probabilities,
    weighted_probabilities,
)
from music_genre.models.selection import select_best
from music_genre.tracking.fusion_model import FusionCombinerModel

logger = logging.getLogger(__name__)

MEMBERS = ("handcrafted", "cnn", "transfer")
RESULT_COLUMNS = [
    "method",
    "members",
    "combiner",
    "parameters",
    VAL_ACCURACY,
    TEST_ACCURACY,
    TEST_CI_LOW,
    TEST_CI_HIGH,
    TEST_TRACKS,
    "val_tracks",
    "selected",
]


def _aligned(
    tables: Mapping[str, pd.DataFrame | None], split: str, required: tuple[str, ...] = ()
) -> tuple[list[str], list[np.ndarray], pd.Series, np.ndarray, list[str]]:
    """Members with predictions, their probability matrices on the tracks they all predicted
    (in track order), those track ids, the labels and the class names."""
    available = {k: t for k, t in tables.items() if t is not None and not t.empty}
    absent = [k for k in (required or tables) if k not in available]
    if required and absent or len(available) < 2:
        raise ValueError(
            f"fusion needs the {split} predictions of "
            f"{' and '.join(required) if required else 'at least two of ' + ', '.join(tables)}; "
            f"missing: {absent}. Run those pipelines first "
            f"(`kedro run --pipelines={','.join(absent)}`)."
        )
    names = list(required or available)
    classes = class_names_of(available[names[0]])
    for name in names[1:]:
        if class_names_of(available[name]) != classes:
            raise ValueError(
                f"fusion: {name} predicts classes {class_names_of(available[name])}"
                f", {names[0]} predicts {classes}: retrain on the same tracks."
            )
    common = set.intersection(*(set(available[n]["track_id"].astype(str)) for n in names))
    track_ids = pd.Series(sorted(common), dtype=str)
    indexed = {
        n: available[n]
        .assign(track_id=available[n]["track_id"].astype(str))
        .set_index("track_id")
        .loc[track_ids]
        for n in names
    }
    labels = indexed[names[0]]["label"].to_numpy(np.int64)
    for name in names[1:]:
        if not np.array_equal(indexed[name]["label"].to_numpy(np.int64), labels):
            raise ValueError(f"fusion: {name} and {names[0]} disagree on {split} labels.")
    dropped = {n: len(available[n]) - len(track_ids) for n in names}
    if any(dropped.values()):
        logger.warning(
            "fusion (%s): %d tracks predicted by every member; left out per member "
            "(no prediction from another member): %s",
            split,
            len(track_ids),
            dropped,
        )
    return names, [probability_matrix(indexed[n]) for n in names], track_ids, labels, classes


def fit_fusion(
    handcrafted_validation_predictions: pd.DataFrame | None,
    cnn_validation_predictions: pd.DataFrame | None,
    transfer_validation_predictions: pd.DataFrame | None,
    params: Mapping[str, Any] | FusionParams,
    handcrafted_model_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit both combiners on the validation predictions and choose one (``fusion.method``:
    ``auto`` = the higher cross-validated accuracy on validation, ties to late fusion).

    ``handcrafted_model_info``: what the handcrafted member's features were computed over; kept
    in the bundle (``member_audio``) so that prediction computes them over the same kind of
    audio and refuses a handcrafted model retrained on another kind since."""
    names, members, _, labels, classes = _aligned(
        dict(
            zip(
                MEMBERS,
                (
                    handcrafted_validation_predictions,
                    cnn_validation_predictions,
                    transfer_validation_predictions,
                ),
                strict=True,
            )
        ),
        "validation",
    )
    settings = node_settings(FusionParams, params)
    weights = best_weights(members, labels, settings.weight_step)
    stacker = fit_stacker(members, labels, settings.seed, settings.stacking_c)
    scores = {
        method: cross_validated_accuracy(method, members, labels, settings) for method in METHODS
    }
    method: str = settings.method
    if method == "auto":
        # the rule of music_genre.models.selection: a tie goes to fewer parameters (late fusion)
        table = pd.DataFrame(
            {
                "method": METHODS,
                VAL_ACCURACY: [scores[m] for m in METHODS],
                "parameters": [combiner_parameters(m, weights, stacker) for m in METHODS],
            }
        )
        method = METHODS[select_best(table, "fusion_results") or 0]
    in_sample = float((weighted_probabilities(members, weights).argmax(1) == labels).mean())
    logger.info(
        "Fusion of %s on %d validation tracks: weights %s (in-sample acc %.4f); "
        "cross-validated acc: %s; using %s",
        names,
        len(labels),
        dict(zip(names, weights.round(2).tolist(), strict=True)),
        in_sample,
        {k: round(v, 4) for k, v in scores.items()},
        method,
    )
    return {
        "members": names,
        "class_names": classes,
        "method": method,
        "weights": weights.tolist(),
        "stacker": stacker,
        "weight_step": settings.weight_step,
        "validation_cv_accuracy": scores,
        "validation_in_sample_accuracy": in_sample,
        "n_validation": int(len(labels)),
        "member_audio": _member_audio(names, handcrafted_model_info),
    }


def _member_audio(
    names: list[str], handcrafted_model_info: Mapping[str, Any] | None
) -> dict[str, Any]:
    if "handcrafted" not in names or not handcrafted_model_info:
        return {}
    keys = ("source", "features_over", "offset_s", "duration_s", "median_training_s")
    return {"handcrafted": {k: handcrafted_model_info.get(k) for k in keys}}


def combiner_parameters(method: str, weights: Any, stacker: Any) -> int:
    """What a combiner fitted on validation: one weight per member (late fusion), or the
    stacker's coefficients and intercepts."""
    if method == "late_fusion":
        return int(np.size(weights))
    return int(np.size(stacker.coef_) + np.size(stacker.intercept_))


def _combiner(bundle: Mapping[str, Any], method: str) -> str:
    if method == "late_fusion":
        return ", ".join(
            f"{n} {w:.1f}" for n, w in zip(bundle["members"], bundle["weights"], strict=True)
        )
    return f"logistic regression (C={bundle['stacker'].C:g}) on member probabilities"


def _audio_params(fusion_model: Mapping[str, Any]) -> dict[str, str]:
    """MLflow: what the handcrafted member's features were computed over (the others read the
    first 29.7 s of each file)."""
    audio = fusion_model.get("member_audio", {}).get("handcrafted")
    if not audio:
        return {}
    from music_genre.audio.training_audio import describe_record

    return {"handcrafted_training_audio": describe_record(audio)}


def evaluate_fusion(
    fusion_model: dict[str, Any],
    handcrafted_test_predictions: pd.DataFrame | None,
    cnn_test_predictions: pd.DataFrame | None,
    transfer_test_predictions: pd.DataFrame | None,
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    """Both combiners on the test tracks every member predicted: ``fusion_results`` (with the
    95 % Wilson interval), the chosen combiner's per-track predictions, and one MLflow run per
    method. Test data only measures; nothing here is chosen."""
    tables = dict(
        zip(
            MEMBERS,
            (handcrafted_test_predictions, cnn_test_predictions, transfer_test_predictions),
            strict=True,
        )
    )
    names, members, track_ids, labels, classes = _aligned(
        {n: tables[n] for n in fusion_model["members"]},
        "test",
        required=tuple(fusion_model["members"]),
    )
    if classes != fusion_model["class_names"]:
        raise ValueError("fusion: the test predictions' classes differ from validation's.")
    rows, runs, chosen = [], [], None
    for method in METHODS:
        probabilities = fused_probabilities(fusion_model, members, method)
        accuracy = float((probabilities.argmax(axis=1) == labels).mean())
        selected = method == fusion_model["method"]
        row = {
            "method": method,
            "members": "+".join(names),
            "combiner": _combiner(fusion_model, method),
            "parameters": combiner_parameters(
                method, fusion_model["weights"], fusion_model["stacker"]
            ),
            VAL_ACCURACY: fusion_model["validation_cv_accuracy"][method],
            TEST_ACCURACY: accuracy,
            **interval_columns(accuracy, len(labels)),
            "val_tracks": fusion_model["n_validation"],
            "selected": selected,
        }
        rows.append(row)
        if selected:
            chosen = prediction_table(track_ids, labels, probabilities, classes)
        runs.append(
            {
                "run_name": f"fusion: {method}",
                "params": {
                    "method": method,
                    "members": row["members"],
                    "combiner": row["combiner"],
                    "weight_step": fusion_model["weight_step"],
                    "selected": selected,
                    "parameters": row["parameters"],
                    "val_tracks": row["val_tracks"],
                    "selection": "cross-validated accuracy on validation tracks",
                    **_audio_params(fusion_model),
                },
                "metrics": {
                    k: row[k]
                    for k in (VAL_ACCURACY, TEST_ACCURACY, TEST_CI_LOW, TEST_CI_HIGH, TEST_TRACKS)
                    if pd.notna(row[k])
                },
                # either method, as one pyfunc over member probabilities: genre_fusion is
                # registered whichever wins
                "model": FusionCombinerModel(fusion_model, method),
                "tags": {"model_family": "fusion"},
                "selected": selected,
            }
        )
        logger.info(
            "Fusion %s: validation (cv) %.4f, test %.4f [%.4f, %.4f] on %d tracks%s",
            method,
            row[VAL_ACCURACY],
            accuracy,
            row[TEST_CI_LOW],
            row[TEST_CI_HIGH],
            row[TEST_TRACKS],
            " (selected)" if selected else "",
        )
    return pd.DataFrame(rows, columns=RESULT_COLUMNS), chosen, runs
