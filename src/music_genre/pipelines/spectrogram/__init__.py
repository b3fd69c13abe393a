"""Spectrogram: every good track -> its log-mel spectrogram in a resumable on-disk store."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
