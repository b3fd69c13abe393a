"""A task for the cluster tests, in a module the Dask workers import cheaply (a function is
sent to a worker by reference: its module is imported there)."""

from __future__ import annotations

import os
import time


def slow_echo(key: str) -> tuple[str, int]:
    """The key and the worker's process id, after 0.3 s (long enough to be killed mid-task)."""
    time.sleep(0.3)
    return key, os.getpid()


def tensorflow_threads() -> tuple[int, int]:
    """This process's TensorFlow intra- and inter-op thread pool sizes (0: every core)."""
    import tensorflow as tf

    return (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
