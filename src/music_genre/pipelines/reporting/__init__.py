"""Reporting: this run's results next to the study's (summary.md and a plotly chart)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
