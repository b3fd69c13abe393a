"""Fusion: the best handcrafted, CNN and transfer models combined (weights or stacking)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
