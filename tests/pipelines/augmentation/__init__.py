"""Tests of the augmentation pipeline: its nodes and the pipeline on small generated data."""
