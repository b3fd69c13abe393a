"""Project hooks."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

from music_genre.evaluation import format_interval

logger = logging.getLogger(__name__)

# results dataset -> (column that selected the model, column reported, how a row is named)
BEST_MODEL_RULES: dict[str, tuple[str, str, list[str]]] = {
    "handcrafted_results": ("val_acc", "test_acc", ["units"]),
    "cnn_results": ("val_acc", "test_acc", ["variant"]),
    "transfer_results": (
        "cv_accuracy",
        "test_accuracy",
        ["backbone", "cut_level", "pca_variance", "classifier", "weights"],
    ),
    # fusion weights/stacker are fitted on validation: its val_acc is optimistic (see README)
    "fusion_results": ("val_acc", "test_acc", ["method", "members"]),
}


def best_models(results: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
    """The best model of each pipeline, chosen on validation (or CV) accuracy, never on test."""
    rows = []
    for name, (select_by, report, naming) in BEST_MODEL_RULES.items():
        table = results.get(name)
        if table is None or table.empty or table[select_by].isna().all():
            continue
        best = table.loc[table[select_by].idxmax()]
        rows.append(
            {
                "pipeline": name.removesuffix("_results"),
                "best model": " ".join(str(best[c]) for c in naming if c in best),
                "selected on": f"{select_by} {best[select_by]:.4f}",
                "test accuracy": round(float(best[report]), 4),
                "95% interval": format_interval(
                    best[report], best.get(f"{report}_ci_low"), best.get(f"{report}_ci_high")
                ),
            }
        )
    return pd.DataFrame(rows)


class RunSummaryHook:
    """At the end of ``kedro run``, print the best model per pipeline that this run trained."""

    @hook_impl
    def after_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any
    ) -> None:
        produced = pipeline.all_outputs()
        results = {}
        for name in BEST_MODEL_RULES:
            if name in produced and catalog.exists(name):
                results[name] = catalog.load(name)
        table = best_models(results)
        if table.empty:
            return
        text = table.to_string(index=False)
        print(  # noqa: T201 - the user asked for a terminal summary, not a log line
            "\nBest model per pipeline (test accuracy of the model chosen on validation/CV, "
            "95% Wilson interval over the test tracks):\n"
            f"{text}\nFull report: data/08_reporting/summary.md (this run next to the study); "
            "browse with `make viz` and `make mlflow-ui`.\n"
        )
