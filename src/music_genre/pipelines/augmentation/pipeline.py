"""Augmentation pipeline: training spectrograms -> augmented_spectrograms (+ preview figure)."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import augment_training_spectrograms, plot_augmentation_examples


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                augment_training_spectrograms,
                inputs=[
                    "tracks",
                    "log_mel_spectrograms",
                    "augmented_spectrogram_store_index",
                    "params:augmentation",
                ],
                outputs="augmented_spectrograms",
                name="augment_training_spectrograms",
            ),
            node(
                plot_augmentation_examples,
                inputs=["tracks", "log_mel_spectrograms", "augmented_spectrograms"],
                outputs="augmentation_examples",
                name="plot_augmentation_examples",
            ),
        ]
    )
