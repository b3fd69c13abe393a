"""Tests of the cnn pipeline: its nodes and the pipeline on small generated data."""
