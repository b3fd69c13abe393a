"""CNN pipeline: the Kostrzewa CNN, its augmented variant and Hyperband tuning (Tables 3-6)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
