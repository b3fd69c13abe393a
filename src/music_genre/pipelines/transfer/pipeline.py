"""Transfer pipeline: spectrograms -> cut-level backbone features -> classifiers -> report."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import (
    export_best_transfer_backbone,
    extract_transfer_features,
    predict_held_out_tracks,
    search_transfer_classifiers,
    select_best_transfer_model,
    tabulate_transfer_results,
    transfer_run_records,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                # transfer_feature_index and transfer_features are one folder: what earlier runs
                # stored (read) and what this run adds (written batch by batch).
                extract_transfer_features,
                inputs=[
                    "tracks",
                    "log_mel_spectrograms",
                    "transfer_feature_index",
                    "params:transfer",
                ],
                outputs="transfer_features",
                name="extract_transfer_features",
            ),
            node(
                search_transfer_classifiers,
                inputs=["tracks", "transfer_features", "params:transfer"],
                outputs=["transfer_search_results", "transfer_excluded_tracks"],
                name="search_transfer_classifiers",
            ),
            node(
                tabulate_transfer_results,
                inputs="transfer_search_results",
                outputs="transfer_results",
                name="tabulate_transfer_results",
            ),
            node(
                transfer_run_records,
                inputs=["transfer_search_results", "tracks"],
                outputs="transfer_mlflow_runs",
                name="log_transfer_runs",
            ),
            node(
                select_best_transfer_model,
                inputs=["transfer_search_results", "tracks"],
                outputs=["transfer_best_model", "transfer_best_confusion_matrix"],
                name="select_best_transfer_model",
            ),
            node(
                export_best_transfer_backbone,
                inputs="transfer_best_model",
                outputs="transfer_best_backbone",
                name="export_best_transfer_backbone",
            ),
            node(
                predict_held_out_tracks,
                inputs=[
                    "transfer_search_results",
                    "tracks",
                    "transfer_features",
                    "params:transfer",
                ],
                outputs=["transfer_validation_predictions", "transfer_test_predictions"],
                name="predict_transfer_held_out_tracks",
            ),
        ]
    )
