"""Augmentation: SpecAugment-style frequency- and time-masked copies of training spectrograms."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
