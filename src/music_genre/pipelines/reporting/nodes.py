"""Reporting: this run's results next to the study's, for every model, in one place."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import plotly.graph_objects as go

COMPARISON_COLUMNS = [
    "pipeline",
    "model",
    "variant",
    "weights",
    "metric",
    "split",
    "this_run",
    "study",
]
# The study's CNN rows are named (model, variant) = (kostrzewa|tuned, plain|augmented).
CNN_VARIANTS = {
    "cnn": ("kostrzewa", "plain"),
    "cnn_augmented": ("kostrzewa", "augmented"),
    "tuned_cnn": ("tuned", "plain"),
    "tuned_cnn_augmented": ("tuned", "augmented"),
}
SPLIT_COLUMNS = {"train": "train", "val": "validation", "test": "test"}


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


def _handcrafted_rows(results: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for _, row in results.iterrows():
        for prefix, split in SPLIT_COLUMNS.items():
            for metric, column in (("accuracy", f"{prefix}_acc"), ("loss", f"{prefix}_loss")):
                rows.append(
                    {
                        "pipeline": "handcrafted",
                        "model": "mlp",
                        "variant": units_label(row["units"]),
                        "weights": "trained",
                        "metric": metric,
                        "split": split,
                        "this_run": row[column],
                    }
                )
    return rows


def _cnn_rows(results: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for _, row in results.iterrows():
        model, variant = CNN_VARIANTS.get(row["variant"], (row["variant"], "plain"))
        for prefix, split in SPLIT_COLUMNS.items():
            for metric, column in (("accuracy", f"{prefix}_acc"), ("loss", f"{prefix}_loss")):
                rows.append(
                    {
                        "pipeline": "cnn",
                        "model": model,
                        "variant": variant,
                        "weights": "trained",
                        "metric": metric,
                        "split": split,
                        "this_run": row[column],
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
        rows.append({**common, "metric": "accuracy", "split": "cv", "this_run": row["cv_accuracy"]})
        rows.append(
            {**common, "metric": "accuracy", "split": "test", "this_run": row["test_accuracy"]}
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
) -> pd.DataFrame:
    """One row per (model, metric, split): this run's value next to the study's.

    A pipeline that has not run yet contributes no values: its study rows stay with an empty
    ``this_run`` (shown as "missing"); models the study did not have get an empty ``study``.
    """
    rows: list[dict[str, Any]] = []
    if handcrafted_results is not None:
        rows += _handcrafted_rows(handcrafted_results)
    if cnn_results is not None:
        rows += _cnn_rows(cnn_results)
    if transfer_results is not None:
        rows += _transfer_rows(transfer_results)
    keys = ["pipeline", "model", "variant", "metric", "split"]
    run = pd.DataFrame(rows, columns=[c for c in COMPARISON_COLUMNS if c != "study"])
    merged = run.merge(_study_rows(paper_results), on=keys, how="outer")
    merged["weights"] = merged["weights"].fillna("")
    order = {"handcrafted": 0, "cnn": 1, "transfer": 2}
    merged = merged.sort_values(
        keys, key=lambda col: col.map(order) if col.name == "pipeline" else col
    )
    return merged[COMPARISON_COLUMNS].reset_index(drop=True)


def describe_data(
    tracks: pd.DataFrame,
    bad_tracks: pd.DataFrame,
    ingestion: dict[str, Any],
    reporting: dict[str, Any],
) -> dict[str, Any]:
    """What produced the numbers: the dataset kind, where it lives and its track counts."""
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
    }


def _fmt(value: Any, absent: str = "missing") -> str:
    return absent if pd.isna(value) else f"{float(value):.4f}"


def render_summary(comparison: pd.DataFrame, data: dict[str, Any]) -> str:
    """Markdown report: a header that says which data and weights, then every model."""
    # read back from CSV, an empty weights cell is NaN
    comparison = comparison.assign(weights=comparison["weights"].fillna("").astype(str))
    accuracy = comparison[comparison["metric"] == "accuracy"]
    weights = sorted({w for w in comparison["weights"] if w and w != "trained"})
    splits = ", ".join(f"{k} {v}" for k, v in sorted(data["splits"].items()))
    lines = [
        "# Results: this run next to the study",
        "",
        f"- **Data**: {data['kind']} — {data['location']}; {data['tracks']} tracks in "
        f"{data['genres']} genres ({splits}); {data['bad_tracks']} bad tracks reported in "
        "`data/08_reporting/bad_tracks.csv`.",
        f"- **Transfer backbone weights**: {', '.join(weights) if weights else 'n/a'}.",
    ]
    if data["kind"] != "FMA":
        lines.append(
            f"- **These numbers come from the {data['kind']} data, not from FMA-small**: they "
            "show that the pipelines work; they are not comparable with the study's column."
        )
    if any(w in {"random", "null", "None"} for w in weights):
        lines.append(
            "- Transfer rows with weights `random` use randomly initialised backbones (no "
            "ImageNet weights offline): they measure random features, not transfer learning."
        )
    if any(w in {"msd", "mtt"} for w in weights):
        lines.append(
            "- Transfer rows with weights `msd`/`mtt` use musicnn's real music-pretrained "
            "weights (shipped in its wheel; beyond the study, so no study value)."
        )
    lines += ["", "The study: Pietrasanta, Magazzù, Magazzù (2022), FMA-small, 8 genres.", ""]
    for pipeline, title, eval_split in (
        ("handcrafted", "Handcrafted features → MLP (Tables 1–2)", "validation"),
        ("cnn", "CNN on log-mel spectrograms (Tables 4–6)", "validation"),
        ("transfer", "Transfer learning: backbone features → PCA → classifier (Tables 7–12)", "cv"),
    ):
        part = accuracy[accuracy["pipeline"] == pipeline]
        lines += [f"## {title}", ""]
        if part["this_run"].isna().all():
            lines += [
                f"missing: this pipeline has produced no results yet "
                f"(`kedro run --pipelines={pipeline}`).",
                "",
            ]
        if part.empty:
            continue
        lines += [
            f"| model | variant | weights | test acc (run) | test acc (study) "
            f"| {eval_split} acc (run) | {eval_split} acc (study) |",
            "|---|---|---|---|---|---|---|",
        ]
        for (model, variant), group in part.groupby(["model", "variant"], sort=False):
            by_split = group.set_index("split")
            test = by_split.loc["test"] if "test" in by_split.index else None
            held = by_split.loc[eval_split] if eval_split in by_split.index else None
            weight = next((w for w in group["weights"] if w), "")
            lines.append(
                f"| {model} | {variant} | {weight} "
                f"| {_fmt(test['this_run']) if test is not None else 'missing'} "
                f"| {_fmt(test['study'], '—') if test is not None else '—'} "
                f"| {_fmt(held['this_run']) if held is not None else 'missing'} "
                f"| {_fmt(held['study'], '—') if held is not None else '—'} |"
            )
        lines.append("")
    return "\n".join(lines)


def comparison_chart(comparison: pd.DataFrame) -> go.Figure:
    """Grouped bars of test accuracy per model: this run next to the study."""
    test = comparison[(comparison["metric"] == "accuracy") & (comparison["split"] == "test")]
    labels = (test["pipeline"] + " · " + test["model"] + " · " + test["variant"]).tolist()
    figure = go.Figure(
        [
            go.Bar(name="this run", x=labels, y=test["this_run"].tolist()),
            go.Bar(name="study", x=labels, y=test["study"].tolist()),
        ]
    )
    figure.update_layout(
        barmode="group",
        title="Test accuracy: this run vs the study",
        yaxis={"title": "accuracy", "range": [0, 1]},
        xaxis={"tickangle": -45},
        height=600,
    )
    return figure
