"""Reporting pipeline: every pipeline's results next to the study's, as markdown and a chart."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import compare_with_study, comparison_chart, describe_data, render_summary


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                compare_with_study,
                inputs=["handcrafted_results", "cnn_results", "transfer_results", "paper_results"],
                outputs="results_comparison",
                name="compare_with_study",
            ),
            node(
                describe_data,
                inputs=["tracks", "bad_tracks", "params:ingestion", "params:reporting"],
                outputs="run_data_description",
                name="describe_data",
            ),
            node(
                render_summary,
                inputs=["results_comparison", "run_data_description"],
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
