"""Tests of the handcrafted pipeline: its nodes and the pipeline on small generated data."""
