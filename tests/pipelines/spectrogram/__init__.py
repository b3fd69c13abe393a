"""Tests of the spectrogram pipeline: its nodes and the pipeline on small generated data."""
