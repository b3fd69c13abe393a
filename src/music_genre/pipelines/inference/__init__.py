"""Inference: genre predictions for every audio file of a music library (a folder or URL)."""

from typing import Any


def create_pipeline(**kwargs: Any) -> Any:
    # imported on call: settings.py imports this package's hooks at every start-up, which must
    # not import the predictors (numpy, pandas, the audio stack) with it
    from .pipeline import create_pipeline as create

    return create(**kwargs)


__all__ = ["create_pipeline"]
