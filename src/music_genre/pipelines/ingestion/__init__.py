"""Ingestion: FMA metadata or a folder-per-genre collection -> clean track table."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
