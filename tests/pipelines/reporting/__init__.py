"""Tests of the reporting pipeline: its nodes and the pipeline on small generated data."""
