"""Tests of the transfer pipeline: its nodes and the pipeline on small generated data."""
