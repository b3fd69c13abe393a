# Over 400 lines: the reporting pipeline's tables: comparison with the study, the data, best models, paired tests, chart (summary.md: summary.py).
"""Reporting: this run's results next to the study's, for every model, in one place."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from music_genre.audio.training_audio import pipeline_audio
from music_genre.config import CnnVariantParams
from music_genre.contracts import (
    ACCURACY,
    BEST_MODEL_RULES,
    CV_ACCURACY,
    CV_ACCURACY_STD,
    LOSS,
    SPLITS,
    TEST_ACCURACY,
    TEST_CI_HIGH,
    TEST_CI_LOW,
    TEST_TRACKS,
    VAL_ACCURACY,
)
from music_genre.models.evaluation import CONFIDENCE, mcnemar_exact
from music_genre.models.selection import saved_model_row

COMPARISON_COLUMNS = [
    "pipeline",
    "model",
    "variant",
    "weights",
    "audio",  # what the model's input was computed over (handcrafted: its source's audio)
    "metric",
    "split",
    "this_run",
    "ci_low",
    "ci_high",
    "spread",
    "study",
]
PIPELINE_ORDER = {"handcrafted": 0, "cnn": 1, "transfer": 2, "fusion": 3}
# (metric, split -> results-table column) of the handcrafted and CNN tables
SPLIT_METRICS = (("accuracy", ACCURACY), ("loss", LOSS))


def units_label(units: Any) -> str:
    """``[512, 256]``, ``"512-256"`` or ``"(512, 256)"`` -> the study's ``(512, 256)``."""
    numbers = re.findall(r"\d+", str(units))
    return "(" + ", ".join(numbers) + ")"


def classifier_label(name: str) -> str:
    """Map classifier names to the study's svm_linear / svm_rbf / mlp."""
    lowered = str(name).lower()
    if "linear" in lowered:
        return "svm_linear"
    if "rbf" in lowered or lowered in {"svc", "svm"}:
        return "svm_rbf"
    if "mlp" in lowered:
        return "mlp"
    return lowered


def _interval(row: pd.Series, column: str) -> dict[str, float]:
    """The 95 % interval of ``column``: only the test accuracy has one (NaN otherwise)."""
    if column != TEST_ACCURACY:
        return {"ci_low": np.nan, "ci_high": np.nan}
    return {"ci_low": row.get(TEST_CI_LOW, np.nan), "ci_high": row.get(TEST_CI_HIGH, np.nan)}


def _handcrafted_rows(results: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for _, row in results.iterrows():
        # one row per (configuration, source): features.csv's whole tracks and the extracted
        # clips stay apart (tables of older runs have no audio column: NaN)
        audio = row.get("audio", np.nan)
        if pd.notna(audio) and str(row.get("comparison", "")).strip().lower() == "true":
            audio = f"{audio}; comparison row (model not saved)"
        for split in SPLITS:
            for metric, columns in SPLIT_METRICS:
                column = columns[split]
                rows.append(
                    {
                        "pipeline": "handcrafted",
                        "model": "mlp",
                        "variant": units_label(row["units"]),
                        "weights": "trained",
                        "audio": audio,
                        "metric": metric,
                        "split": split,
                        "this_run": row[column],
                        **_interval(row, column),
                    }
                )
    return rows


def cnn_report_names(cnn_params: Mapping[str, Any] | None) -> dict[str, tuple[str, str]]:
    """CNN variant -> its (model, variant) in the comparison with the study, from
    ``cnn.variants``: ``report_model`` (default: the variant's name), and ``augmented`` or
    ``plain`` (the study's rows: kostrzewa|tuned x plain|augmented)."""
    names = {}
    for name, entry in (cnn_params or {}).get("variants", {}).items():
        spec = CnnVariantParams.model_validate(entry)
        names[name] = (spec.report_model or name, "augmented" if spec.augmented else "plain")
    return names


def _cnn_rows(results: pd.DataFrame, names: Mapping[str, tuple[str, str]]) -> list[dict[str, Any]]:
    rows = []
    for _, row in results.iterrows():
        # a variant no longer in cnn.variants (an older table): its own name, plain
        model, variant = names.get(row["variant"], (row["variant"], "plain"))
        for split in SPLITS:
            for metric, columns in SPLIT_METRICS:
                column = columns[split]
                rows.append(
                    {
                        "pipeline": "cnn",
                        "model": model,
                        "variant": variant,
                        "weights": "trained",
                        "metric": metric,
                        "split": split,
                        "this_run": row[column],
                        **_interval(row, column),
                    }
                )
        rows.append(
            {
                "pipeline": "cnn",
                "model": model,
                "variant": variant,
                "weights": "trained",
                "metric": "inference_seconds_cpu",
                "split": "single",
                "this_run": row["inference_seconds"],
            }
        )
    return rows


def _transfer_model(backbone: str, cut_level: str, pca_variance: float) -> str:
    return f"{backbone} {cut_level} pca{float(pca_variance):.2f}"


def _transfer_rows(results: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for _, row in results.iterrows():
        model = _transfer_model(row["backbone"], row["cut_level"], row["pca_variance"])
        common = {
            "pipeline": "transfer",
            "model": model,
            "variant": classifier_label(row["classifier"]),
            "weights": str(row["weights"]),
        }
        rows.append(
            {
                **common,
                "metric": "accuracy",
                "split": "cv",
                "this_run": row[CV_ACCURACY],
                "spread": row.get(CV_ACCURACY_STD, np.nan),
            }
        )
        rows.append(
            {
                **common,
                "metric": "accuracy",
                "split": "test",
                "this_run": row[TEST_ACCURACY],
                **_interval(row, TEST_ACCURACY),
            }
        )
    return rows


def _fusion_rows(results: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for _, row in results.iterrows():
        common = {
            "pipeline": "fusion",
            "model": row["method"],
            "variant": row["members"],
            "weights": "trained",
            "metric": "accuracy",
        }
        rows.append({**common, "split": "validation", "this_run": row[VAL_ACCURACY]})
        rows.append(
            {
                **common,
                "split": "test",
                "this_run": row[TEST_ACCURACY],
                **_interval(row, TEST_ACCURACY),
            }
        )
    return rows


def _study_rows(paper_results: pd.DataFrame) -> pd.DataFrame:
    study = paper_results.rename(columns={"value": "study"}).copy()
    # "vgg16 fc2 pca0.90 (153 comp)" -> "vgg16 fc2 pca0.90": the run reports its own n_components.
    study["model"] = study["model"].str.replace(r"\s*\(\d+ comp\)$", "", regex=True)
    return study[["pipeline", "model", "variant", "metric", "split", "study"]]


def compare_with_study(
    handcrafted_results: pd.DataFrame | None,
    cnn_results: pd.DataFrame | None,
    transfer_results: pd.DataFrame | None,
    paper_results: pd.DataFrame,
    fusion_results: pd.DataFrame | None = None,
    cnn_params: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per (model, metric, split): this run's value next to the study's, with the
    95 % Wilson interval of test accuracies (``ci_low``, ``ci_high``) and the fold standard
    deviation of cross-validation accuracies (``spread``). The CNN variants' names come from
    ``cnn_params`` (``params:cnn``, :func:`cnn_report_names`).

    A pipeline that has not run yet contributes no values: its study rows stay with an empty
    ``this_run`` (shown as "missing"); models the study did not have get an empty ``study``.
    """
    rows: list[dict[str, Any]] = []
    if handcrafted_results is not None:
        rows += _handcrafted_rows(handcrafted_results)
    if cnn_results is not None:
        rows += _cnn_rows(cnn_results, cnn_report_names(cnn_params))
    if transfer_results is not None:
        rows += _transfer_rows(transfer_results)
    if fusion_results is not None:
        rows += _fusion_rows(fusion_results)
    keys = ["pipeline", "model", "variant", "metric", "split"]
    run = pd.DataFrame(rows, columns=[c for c in COMPARISON_COLUMNS if c != "study"])
    merged = run.merge(_study_rows(paper_results), on=keys, how="outer")
    merged["weights"] = merged["weights"].fillna("")
    merged = merged.sort_values(
        [*keys, "audio"],
        key=lambda col: col.map(PIPELINE_ORDER) if col.name == "pipeline" else col,
        na_position="first",
    )
    return merged[COMPARISON_COLUMNS].reset_index(drop=True)


def describe_data(
    tracks: pd.DataFrame,
    bad_tracks: pd.DataFrame,
    ingestion: dict[str, Any],
    reporting: dict[str, Any],
    handcrafted_results: pd.DataFrame | None = None,
    handcrafted: dict[str, Any] | None = None,
    spectrogram: dict[str, Any] | None = None,
    transfer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What produced the numbers: the dataset kind, where it lives, its track counts, and per
    pipeline what audio its models were trained on (``training_audio``; handcrafted: from its
    results table, which says what each source's features were computed over)."""
    audio = pipeline_audio(
        {"handcrafted": handcrafted, "spectrogram": spectrogram, "transfer": transfer},
        handcrafted_results,
    )
    if ingestion["source"] == "folder":
        kind, location = "folder collection", str(ingestion["folder"])
    else:
        kind = reporting["dataset_kind"]
        location = f"{ingestion['fma_root']} (subset {ingestion['subset']})"
    return {
        "kind": kind,
        "location": location,
        "tracks": int(len(tracks)),
        "genres": int(tracks["genre"].nunique()),
        "splits": {k: int(v) for k, v in tracks["split"].value_counts().items()},
        "bad_tracks": int(len(bad_tracks)),
        "split_method": _split_method(ingestion),
        "training_audio": audio,
    }


def _split_method(ingestion: dict[str, Any]) -> str:
    if ingestion["source"] != "folder":
        return "FMA's official split"
    if ingestion.get("split_file"):
        return f"the published split file {ingestion['split_file']}"
    fractions = ingestion.get("split_fractions", {})
    shares = "/".join(str(round(100 * float(fractions[s]))) for s in fractions)
    if ingestion.get("group_by"):
        return (
            f"seeded {shares} split keeping every {ingestion['group_by']} on one side "
            "(StratifiedGroupKFold)"
        )
    return f"seeded stratified {shares} split"


BEST_MODEL_COLUMNS = [
    "pipeline",
    "model",
    "selected_by",
    "selection_value",
    TEST_ACCURACY,
    TEST_CI_LOW,
    TEST_CI_HIGH,
    TEST_TRACKS,
    "study_best_test_accuracy",
    "study_best_model",
    "study_outside_interval",
]
PAIRED_COLUMNS = [
    "model_a",
    "model_b",
    "n_tracks",
    "acc_a",
    "acc_b",
    "only_a_right",
    "only_b_right",
    "p_value",
    "verdict",
]
ALPHA = 1 - CONFIDENCE


def best_model_table(
    handcrafted_results: pd.DataFrame | None,
    cnn_results: pd.DataFrame | None,
    transfer_results: pd.DataFrame | None,
    fusion_results: pd.DataFrame | None,
    paper_results: pd.DataFrame,
) -> pd.DataFrame:
    """Each pipeline's best model (chosen on validation / CV by the rule of
    :mod:`music_genre.models.selection`, as the terminal summary and the training nodes), its test
    accuracy with the 95 % Wilson interval, and whether the study's best test accuracy for that
    pipeline lies outside this interval (a difference beyond the run's own uncertainty)."""
    tables = {
        "handcrafted_results": handcrafted_results,
        "cnn_results": cnn_results,
        "transfer_results": transfer_results,
        "fusion_results": fusion_results,
    }
    study = _study_rows(paper_results)
    study = study[(study["metric"] == "accuracy") & (study["split"] == "test")]
    rows = []
    for name, (select_by, report, naming, _) in BEST_MODEL_RULES.items():
        best = saved_model_row(tables.get(name), name)
        if best is None:
            continue
        pipeline = name.removesuffix("_results")
        low = best.get(TEST_CI_LOW, np.nan)
        high = best.get(TEST_CI_HIGH, np.nan)
        in_study = study[study["pipeline"] == pipeline]
        study_best = in_study.loc[in_study["study"].idxmax()] if len(in_study) else None
        study_value = np.nan if study_best is None else float(study_best["study"])
        outside = (
            None
            if study_best is None or pd.isna(low)
            else bool(study_value < low or study_value > high)
        )
        rows.append(
            {
                "pipeline": pipeline,
                "model": " ".join(str(best[c]) for c in naming if c in best),
                "selected_by": select_by,
                "selection_value": float(best[select_by]),
                TEST_ACCURACY: float(best[report]),
                TEST_CI_LOW: low,
                TEST_CI_HIGH: high,
                TEST_TRACKS: best.get(TEST_TRACKS, np.nan),
                "study_best_test_accuracy": study_value,
                "study_best_model": ""
                if study_best is None
                else f"{study_best['model']} {study_best['variant']}",
                "study_outside_interval": outside,
            }
        )
    return pd.DataFrame(rows, columns=BEST_MODEL_COLUMNS)


def paired_tests(
    handcrafted_test_predictions: pd.DataFrame | None,
    cnn_test_predictions: pd.DataFrame | None,
    transfer_test_predictions: pd.DataFrame | None,
    fusion_test_predictions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Exact McNemar test for every pair of pipeline best models, on the test tracks both
    predicted (paired: the same tracks, so the test uses who got which track right)."""
    available = {
        name: table
        for name, table in (
            ("handcrafted", handcrafted_test_predictions),
            ("cnn", cnn_test_predictions),
            ("transfer", transfer_test_predictions),
            ("fusion", fusion_test_predictions),
        )
        if table is not None and not table.empty
    }
    rows = []
    names = list(available)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = available[a].merge(available[b], on="track_id", suffixes=("_a", "_b"))
            if both.empty:
                continue
            right_a = (both["predicted_a"] == both["label_a"]).to_numpy()
            right_b = (both["predicted_b"] == both["label_b"]).to_numpy()
            test = mcnemar_exact(right_a, right_b)
            if test["p_value"] >= ALPHA:
                verdict = "no significant difference"
            else:
                verdict = f"{a if test['only_a'] > test['only_b'] else b} better"
            rows.append(
                {
                    "model_a": a,
                    "model_b": b,
                    "n_tracks": test["n"],
                    "acc_a": float(right_a.mean()),
                    "acc_b": float(right_b.mean()),
                    "only_a_right": test["only_a"],
                    "only_b_right": test["only_b"],
                    "p_value": test["p_value"],
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def comparison_chart(comparison: pd.DataFrame) -> go.Figure:
    """Grouped bars of test accuracy per model: this run next to the study."""
    test = comparison[(comparison["metric"] == "accuracy") & (comparison["split"] == "test")]
    labels = test["pipeline"] + " · " + test["model"] + " · " + test["variant"]
    if "audio" in test:  # features.csv's whole tracks and extracted clips are separate bars
        labels = labels + test["audio"].map(lambda a: "" if pd.isna(a) else f" · {a}")
    labels = labels.tolist()
    value = test["this_run"].astype(float)
    # 95 % Wilson interval as asymmetric error bars (absent bounds draw no bar)
    high = test["ci_high"].astype(float) if "ci_high" in test else value * np.nan
    low = test["ci_low"].astype(float) if "ci_low" in test else value * np.nan
    error = {
        "type": "data",
        "symmetric": False,
        "array": (high - value).tolist(),
        "arrayminus": (value - low).tolist(),
    }
    figure = go.Figure(
        [
            go.Bar(name="this run", x=labels, y=value.tolist(), error_y=error),
            go.Bar(name="study", x=labels, y=test["study"].tolist()),
        ]
    )
    figure.update_layout(
        barmode="group",
        title="Test accuracy: this run (with 95 % Wilson interval) vs the study",
        yaxis={"title": "accuracy", "range": [0, 1]},
        xaxis={"tickangle": -45},
        height=600,
    )
    return figure
