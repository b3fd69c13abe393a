"""Transfer pipeline: VGG16 / ResNet50 cut-level features -> PCA -> grid-searched SVM / MLP."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
