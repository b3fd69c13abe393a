"""Serving pipeline: log the best model as an MLflow pyfunc genre predictor, and package it
as a folder for ``genre-predict``."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import package_genre_predictor

ARTIFACTS = [
    "tracks",
    "handcrafted_mlp",
    "handcrafted_scaler",
    "handcrafted_model_info",
    "cnn_best_model",
    "cnn_best_model_info",
    "transfer_best_model",
    "fusion_model",
]


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                package_genre_predictor,
                inputs={
                    "handcrafted_results": "handcrafted_results",
                    "cnn_results": "cnn_results",
                    "transfer_results": "transfer_results",
                    "spectrogram_params": "params:spectrogram",
                    "handcrafted_params": "params:handcrafted",
                    "serving_params": "params:serving",
                    **{name: name for name in ARTIFACTS},
                },
                outputs=["genre_predictor_mlflow_runs", "genre_predictor_package"],
                name="package_genre_predictor",
            ),
        ]
    )
