"""TensorFlow's C++ start-up notices are filtered; other output of its import is kept."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.helpers.processes import run_command


def _run(code: str) -> subprocess.CompletedProcess:
    return run_command([sys.executable, "-c", textwrap.dedent(code)], timeout=300)


@pytest.mark.slow
def test_tensorflow_imports_quietly_and_a_second_install_is_harmless():
    result = _run(
        """
        import importlib, sys
        import music_genre.infra.quiet_imports as quiet
        quiet.install()
        importlib.reload(quiet)  # a reloading notebook kernel: a second finder instance
        sys.meta_path.insert(0, quiet._QuietTensorflowFinder())
        quiet.install()
        import keras
        import tensorflow as tf
        print("ok", tf.__version__)
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok ")
    assert "oneDNN custom operations" not in result.stderr
    assert "Could not find cuda drivers" not in result.stderr


def test_lines_that_are_not_known_notices_are_written_back():
    from music_genre.infra.quiet_imports import NOISE

    assert NOISE.search("I0000 port.cc:153] oneDNN custom operations are on. You may see")
    assert not NOISE.search("E0000 some_op.cc:12] Failed to load a real library")
