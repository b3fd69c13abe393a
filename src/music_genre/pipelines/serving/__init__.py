"""Serving: the best model as an MLflow pyfunc genre predictor (``mlflow models serve``)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
