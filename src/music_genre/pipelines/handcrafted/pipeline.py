"""Handcrafted pipeline: tracks -> 518 features -> standardized input -> MLP sweep -> report."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import (
    build_feature_table,
    comparison_feature_tables,
    extract_handcrafted_features,
    plot_confusion_matrix,
    predict_held_out_tracks,
    standardize_features,
    train_handcrafted_models,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                # handcrafted_feature_row_index and handcrafted_feature_rows are one folder: what
                # earlier runs stored (read) and what this run adds (written batch by batch).
                extract_handcrafted_features,
                inputs=["tracks", "handcrafted_feature_row_index", "params:handcrafted"],
                outputs="handcrafted_feature_rows",
                name="extract_handcrafted_features",
            ),
            node(
                build_feature_table,
                inputs=["tracks", "handcrafted_feature_rows", "fma_features", "params:handcrafted"],
                outputs=["handcrafted_features", "bad_tracks_handcrafted"],
                name="build_handcrafted_feature_table",
            ),
            node(
                standardize_features,
                inputs=["handcrafted_features", "tracks"],
                outputs=["handcrafted_model_input", "handcrafted_scaler"],
                name="standardize_handcrafted_features",
            ),
            node(
                # handcrafted.source may list several sources: the first is the saved model,
                # each further one trains the same sweep for its own rows of the results
                comparison_feature_tables,
                inputs=["tracks", "handcrafted_feature_rows", "fma_features", "params:handcrafted"],
                outputs="handcrafted_comparison_features",
                name="build_handcrafted_comparison_tables",
            ),
            node(
                train_handcrafted_models,
                inputs=[
                    "handcrafted_model_input",
                    "handcrafted_comparison_features",
                    "tracks",
                    "params:handcrafted",
                ],
                outputs=[
                    "handcrafted_mlflow_runs",
                    "handcrafted_results",
                    "handcrafted_mlp",
                    "handcrafted_model_info",
                ],
                name="train_handcrafted_mlp_sweep",
            ),
            node(
                plot_confusion_matrix,
                inputs=["handcrafted_mlp", "handcrafted_model_input"],
                outputs="handcrafted_confusion_matrix",
                name="plot_handcrafted_confusion_matrix",
            ),
            node(
                predict_held_out_tracks,
                inputs=["handcrafted_mlp", "handcrafted_model_input"],
                outputs=["handcrafted_validation_predictions", "handcrafted_test_predictions"],
                name="predict_handcrafted_held_out_tracks",
            ),
        ]
    )
