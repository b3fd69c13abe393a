"""Spectrogram pipeline: tracks -> log_mel_spectrograms (+ failures report, preview figure)."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import (
    compute_log_mel_spectrograms,
    plot_spectrogram_examples,
    report_spectrogram_failures,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                compute_log_mel_spectrograms,
                inputs=["tracks", "log_mel_spectrogram_store_index", "params:spectrogram"],
                outputs="log_mel_spectrograms",
                name="compute_log_mel_spectrograms",
            ),
            node(
                report_spectrogram_failures,
                inputs=["tracks", "log_mel_spectrograms"],
                outputs="bad_tracks_spectrogram",
                name="report_spectrogram_failures",
            ),
            node(
                plot_spectrogram_examples,
                inputs=["tracks", "log_mel_spectrograms"],
                outputs="spectrogram_examples",
                name="plot_spectrogram_examples",
            ),
        ]
    )
