"""Handcrafted features: FMA's 518 features and the study's MLP sweep (Tables 1-2)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
