"""Reporting pipeline: every pipeline's results next to the study's, as markdown and a chart."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import (
    best_model_table,
    compare_with_study,
    comparison_chart,
    describe_data,
    paired_tests,
)
from .summary import render_summary

RESULTS = ["handcrafted_results", "cnn_results", "transfer_results"]
TEST_PREDICTIONS = [
    f"{name}_test_predictions" for name in ("handcrafted", "cnn", "transfer", "fusion")
]


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                compare_with_study,
                inputs=[*RESULTS, "paper_results", "fusion_results", "params:cnn"],
                outputs="results_comparison",
                name="compare_with_study",
            ),
            node(
                best_model_table,
                inputs=[*RESULTS, "fusion_results", "paper_results"],
                outputs="best_models",
                name="best_model_table",
            ),
            node(
                paired_tests,
                inputs=TEST_PREDICTIONS,
                outputs="paired_tests",
                name="paired_tests",
            ),
            node(
                describe_data,
                inputs=[
                    "tracks",
                    "bad_tracks",
                    "params:ingestion",
                    "params:reporting",
                    "handcrafted_results",
                    "params:handcrafted",
                    "params:spectrogram",
                    "params:transfer",
                ],
                outputs="run_data_description",
                name="describe_data",
            ),
            node(
                render_summary,
                inputs=[
                    "results_comparison",
                    "run_data_description",
                    "best_models",
                    "paired_tests",
                ],
                outputs="summary_report",
                name="render_summary",
            ),
            node(
                comparison_chart,
                inputs="results_comparison",
                outputs="summary_chart",
                name="comparison_chart",
            ),
        ]
    )
