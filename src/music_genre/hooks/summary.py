"""The terminal summary after ``kedro run``: the best model of each pipeline and the slowest
nodes (``RunSummaryHook``)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

from music_genre.contracts import BEST_MODEL_RULES, TEST_CI_HIGH, TEST_CI_LOW
from music_genre.models.evaluation import format_interval
from music_genre.models.selection import saved_model_row


def best_models(
    results: dict[str, pd.DataFrame | None], params: dict[str, Any] | None = None
) -> pd.DataFrame:
    """The best model of each pipeline, chosen on validation (or CV) accuracy, never on test,
    by the rule of :mod:`music_genre.models.selection`, with what audio it was trained on
    (``params``: the run's parameters)."""
    from music_genre.audio.training_audio import short_pipeline_audio

    rows = []
    for name, (select_by, report, naming, _) in BEST_MODEL_RULES.items():
        best = saved_model_row(results.get(name), name)
        if best is None:
            continue
        pipeline = name.removesuffix("_results")
        rows.append(
            {
                "pipeline": pipeline,
                "best model": " ".join(str(best[c]) for c in naming if c in best),
                "trained on": short_pipeline_audio(pipeline, params or {}, best),
                "selected on": f"{select_by} {best[select_by]:.4f}",
                "test accuracy": round(float(best[report]), 4),
                "95% interval": format_interval(
                    best[report], best.get(TEST_CI_LOW), best.get(TEST_CI_HIGH)
                ),
            }
        )
    return pd.DataFrame(rows)


def slowest_nodes(durations: dict[str, float], limit: int = 8) -> pd.DataFrame:
    """The nodes that took longest, with their share of the run's node time."""
    total = sum(durations.values()) or 1.0
    ranked = sorted(durations.items(), key=lambda item: item[1], reverse=True)[:limit]
    return pd.DataFrame(
        {
            "node": [name for name, _ in ranked],
            "seconds": [round(seconds, 1) for _, seconds in ranked],
            "share": [f"{seconds / total:.0%}" for _, seconds in ranked],
        }
    )


class RunSummaryHook:
    """At the end of ``kedro run``, print where the time went (the slowest nodes) and the best
    model per pipeline that this run trained."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self.durations: dict[str, float] = {}

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._started, self.durations = {}, {}

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        self._started[node.name] = time.perf_counter()

    def _until_now(self, node: Any) -> None:
        started = self._started.get(node.name)
        if started is not None:
            self.durations[node.name] = time.perf_counter() - started

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        self._until_now(node)

    # A generator node's batches, and the lazy jobs the feature store runs, are computed while
    # their outputs are saved, after after_node_run: a node ends with its last saved output.
    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        self._until_now(node)

    @hook_impl
    def after_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any
    ) -> None:
        if self.durations:
            print(  # noqa: T201 - the user asked for a terminal summary, not a log line
                f"\nSlowest nodes ({sum(self.durations.values()):.0f} s of node time in all):\n"
                f"{slowest_nodes(self.durations).to_string(index=False)}"
            )
        produced = pipeline.all_outputs()
        results = {}
        for name in BEST_MODEL_RULES:
            if name in produced and catalog.exists(name):
                results[name] = catalog.load(name)
        params = {
            section: catalog.load(f"params:{section}")
            for section in ("handcrafted", "spectrogram")
            if f"params:{section}" in catalog
        }
        table = best_models(results, params)
        if table.empty:
            return
        text = table.to_string(index=False)
        print(  # noqa: T201 - the user asked for a terminal summary, not a log line
            "\nBest model per pipeline (test accuracy of the model chosen on validation/CV, "
            "95% Wilson interval over the test tracks):\n"
            f"{text}\nFull report: data/08_reporting/summary.md (this run next to the study); "
            "browse with `make viz` and `make mlflow-ui`.\n"
        )
