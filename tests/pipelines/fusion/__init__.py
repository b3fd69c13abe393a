"""Tests of the fusion pipeline: its nodes and the pipeline on small generated data."""
