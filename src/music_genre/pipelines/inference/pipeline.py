"""Inference pipeline: predict every audio file of a library (``inference.folder``).

Not part of ``__default__`` (``make run``): it needs a folder and trained models. Run it with
``kedro run --pipeline=inference --params "inference.folder=/music"``.
"""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import library_predictions_csv, predict_music_library


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                predict_music_library,
                inputs={
                    "model_artifacts": "model_artifacts",
                    "stored": "library_predictions_stored",
                    "inference_params": "params:inference",
                    "spectrogram_params": "params:spectrogram",
                    "handcrafted_params": "params:handcrafted",
                },
                outputs="library_predictions",
                name="predict_music_library",
            ),
            node(
                library_predictions_csv,
                inputs="library_predictions",
                outputs="library_predictions_csv",
                name="library_predictions_csv",
            ),
        ]
    )
