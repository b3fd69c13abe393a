"""Tests of the ingestion pipeline: its nodes and the pipeline on small generated data."""
