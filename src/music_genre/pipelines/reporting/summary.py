"""The run's ``summary.md`` (reporting pipeline): the best model per pipeline with its
uncertainty, the paired tests, the audio each model trained on, next to the study."""

from __future__ import annotations

from typing import Any

import pandas as pd

from music_genre.contracts import TEST_ACCURACY, TEST_CI_HIGH, TEST_CI_LOW
from music_genre.models.evaluation import format_interval

from .nodes import ALPHA, BEST_MODEL_COLUMNS, PAIRED_COLUMNS


def _fmt(value: Any, absent: str = "missing") -> str:
    return absent if pd.isna(value) else f"{float(value):.4f}"


def _fmt_run(row: pd.Series | None) -> str:
    """This run's value with its uncertainty: ``0.5200 [0.4310, 0.6080]`` (95 % Wilson) for
    test accuracies, ``0.5500 ± 0.0300`` (fold standard deviation) for CV accuracies."""
    if row is None or pd.isna(row["this_run"]):
        return "missing"
    if pd.notna(row.get("ci_low")) and pd.notna(row.get("ci_high")):
        return format_interval(row["this_run"], row["ci_low"], row["ci_high"], digits=4)
    if pd.notna(row.get("spread")):
        return f"{float(row['this_run']):.4f} ± {float(row['spread']):.4f}"
    return _fmt(row["this_run"])


def _uncertainty_section(best: pd.DataFrame, paired: pd.DataFrame) -> list[str]:
    lines = [
        "## Uncertainty: this run's best models",
        "",
        "Test accuracies carry a 95 % Wilson score interval (binomial over the test tracks); "
        "cross-validation accuracies ± the standard deviation over the folds. The fewer the "
        "test tracks, the wider the interval (about ±0.2 for 24 tracks, ±0.035 for 800).",
        "",
    ]
    if best.empty:
        return [*lines, "missing: no model pipeline has produced results yet.", ""]
    lines += [
        "| pipeline | best model (chosen on) | test acc [95 % CI] | study's best test acc "
        "| study's best outside the interval? |",
        "|---|---|---|---|---|",
    ]
    for _, row in best.iterrows():
        outside = row["study_outside_interval"]
        verdict = (
            "—"
            if outside is None or pd.isna(outside)
            else "yes: differs beyond the interval"
            if bool(outside)
            else "no: within the interval"
        )
        lines.append(
            f"| {row['pipeline']} | {row['model']} ({row['selected_by']} "
            f"{row['selection_value']:.4f}) "
            f"| {format_interval(row[TEST_ACCURACY], row[TEST_CI_LOW], row[TEST_CI_HIGH], 4)} "
            f"| {_fmt(row['study_best_test_accuracy'], '—')} | {verdict} |"
        )
    lines += [
        "",
        "**Paired comparisons** (exact McNemar test on the test tracks both models predicted; "
        f"significant at p < {ALPHA:.2f}): two models' intervals may overlap while one is "
        "still reliably better on the same tracks.",
        "",
    ]
    if paired.empty:
        return [
            *lines,
            "missing: per-track test predictions of at least two pipelines are needed.",
            "",
        ]
    lines += [
        "| model A | model B | tracks | acc A | acc B | only A right | only B right "
        "| p | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, row in paired.iterrows():
        lines.append(
            f"| {row['model_a']} | {row['model_b']} | {int(row['n_tracks'])} "
            f"| {row['acc_a']:.4f} | {row['acc_b']:.4f} | {int(row['only_a_right'])} "
            f"| {int(row['only_b_right'])} | {row['p_value']:.3g} | {row['verdict']} |"
        )
    return [*lines, ""]


HANDCRAFTED_STUDY_NOTE = (
    "**Not like with like in the study:** its handcrafted rows (Tables 1–2) were trained on "
    "FMA's `features.csv`, which FMA computed over the **full-length tracks**, while its CNN "
    "and transfer rows saw the first 29.7 s of the 30-s clips. A `features.csv` row here has "
    "seen whole tracks too; train on features extracted from the clips "
    '(`--params "handcrafted.source=fma_csv+extract"`) for a row that saw the same audio as '
    "the other pipelines."
)


def _training_audio_section(audio: dict[str, str]) -> list[str]:
    """Per pipeline, what audio its models were trained on."""
    if not audio:
        return []
    lines = ["## What audio each pipeline's models were trained on", ""]
    lines += [f"- **{pipeline}**: {text}" for pipeline, text in audio.items() if text]
    return [*lines, ""]


def render_summary(
    comparison: pd.DataFrame,
    data: dict[str, Any],
    best: pd.DataFrame | None = None,
    paired: pd.DataFrame | None = None,
) -> str:
    """Markdown report: a header that says which data and weights, the best models with their
    uncertainty and paired tests, then every model."""
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
        f"- **Split**: {data.get('split_method', 'n/a')}.",
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
    lines += _training_audio_section(data.get("training_audio") or {})
    lines += _uncertainty_section(
        best if best is not None else pd.DataFrame(columns=BEST_MODEL_COLUMNS),
        paired if paired is not None else pd.DataFrame(columns=PAIRED_COLUMNS),
    )
    for pipeline, title, eval_split in (
        ("handcrafted", "Handcrafted features → MLP (Tables 1–2)", "validation"),
        ("cnn", "CNN on log-mel spectrograms (Tables 4–6)", "validation"),
        ("transfer", "Transfer learning: backbone features → PCA → classifier (Tables 7–12)", "cv"),
        (
            "fusion",
            "Fusion of the best handcrafted, CNN and transfer models (beyond the study)",
            "validation",
        ),
    ):
        part = accuracy[accuracy["pipeline"] == pipeline]
        lines += [f"## {title}", ""]
        if pipeline == "handcrafted":
            lines += [HANDCRAFTED_STUDY_NOTE, ""]
        with_audio = part["audio"].notna().any() if "audio" in part else False
        if part["this_run"].isna().all():
            lines += [
                f"missing: this pipeline has produced no results yet "
                f"(`kedro run --pipelines={pipeline}`).",
                "",
            ]
        if part.empty:
            continue
        audio_head, audio_rule = ("| features computed over ", "|---") if with_audio else ("", "")
        lines += [
            f"| model | variant | weights {audio_head}| test acc (run) [95 % CI] "
            f"| test acc (study) | {eval_split} acc (run) | {eval_split} acc (study) |",
            f"|---|---|---{audio_rule}|---|---|---|---|",
        ]
        keys = ["model", "variant", "audio"] if with_audio else ["model", "variant"]
        for group_keys, group in part.groupby(keys, sort=False, dropna=False):
            model, variant = group_keys[:2]
            by_split = group.set_index("split")
            test = by_split.loc["test"] if "test" in by_split.index else None
            held = by_split.loc[eval_split] if eval_split in by_split.index else None
            weight = next((w for w in group["weights"] if w), "")
            audio_cell = ""
            if with_audio:
                audio = group_keys[2]
                audio_cell = (
                    f"| {'study: whole track (features.csv)' if pd.isna(audio) else audio} "
                )
            lines.append(
                f"| {model} | {variant} | {weight} {audio_cell}"
                f"| {_fmt_run(test)} "
                f"| {_fmt(test['study'], '—') if test is not None else '—'} "
                f"| {_fmt_run(held)} "
                f"| {_fmt(held['study'], '—') if held is not None else '—'} |"
            )
        lines.append("")
    return "\n".join(lines)
