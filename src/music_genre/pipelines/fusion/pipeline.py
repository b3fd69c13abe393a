"""Fusion pipeline: validation predictions -> fitted combiner; test predictions -> results.

The combiner is fitted from validation predictions only (``fit_fusion`` never receives test
data); ``evaluate_fusion`` applies it to the test predictions once."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import MEMBERS, evaluate_fusion, fit_fusion


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                fit_fusion,
                inputs=[
                    *[f"{m}_validation_predictions" for m in MEMBERS],
                    "params:fusion",
                    "handcrafted_model_info",
                ],
                outputs="fusion_model",
                name="fit_fusion",
            ),
            node(
                evaluate_fusion,
                inputs=["fusion_model", *[f"{m}_test_predictions" for m in MEMBERS]],
                outputs=["fusion_results", "fusion_test_predictions", "fusion_mlflow_runs"],
                name="evaluate_fusion",
            ),
        ]
    )
