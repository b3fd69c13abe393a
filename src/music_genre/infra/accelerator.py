"""Which device TensorFlow computes on, and the optional mixed precision.

Nothing here chooses a device: TensorFlow places work on the first visible GPU by itself
(``pip install -e ".[gpu]"`` installs the CUDA build). What the project adds is saying so in the
log of every process that trains or extracts (a run on the wrong device otherwise looks like a
slow run) and ``runtime.mixed_precision``: float16 compute with float32 weights on a GPU, where
it roughly doubles convolution throughput. On a CPU it is slower, not faster, so there the
setting is refused with a warning and the run stays float32.
"""

from __future__ import annotations

import functools
import logging

logger = logging.getLogger(__name__)


def visible_gpus() -> list[str]:
    """Names of the GPUs TensorFlow can use (empty on a CPU-only machine or build)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        names.append(str(details.get("device_name") or gpu.name))
    return names


@functools.cache
def log_compute_device() -> str:
    """Log (once per process) where TensorFlow computes; returns the line."""
    import tensorflow as tf

    gpus = visible_gpus()
    if gpus:
        line = f"TensorFlow computes on GPU: {', '.join(gpus)}"
    elif tf.test.is_built_with_cuda():
        line = (
            "TensorFlow computes on the CPU: it is built with CUDA but sees no GPU "
            "(check nvidia-smi and CUDA_VISIBLE_DEVICES)"
        )
    else:
        line = "TensorFlow computes on the CPU (CPU-only build; GPU: pip install -e '.[gpu]')"
    line += f"; Keras dtype policy {_policy_name()}"
    logger.info(line)
    return line


def _policy_name() -> str:
    import keras

    return keras.mixed_precision.global_policy().name


def configure_precision(mixed_precision: bool) -> str:
    """Set Keras' global dtype policy for this process: ``mixed_float16`` when asked for and a
    GPU is visible, else ``float32`` (asking for it without a GPU logs a warning). Returns the
    policy set."""
    import keras

    policy = "float32"
    if mixed_precision:
        if visible_gpus():
            policy = "mixed_float16"
        else:
            logger.warning(
                "runtime.mixed_precision: true is ignored: no GPU is visible, and float16 on a "
                "CPU is slower than float32; models train in float32"
            )
    if keras.mixed_precision.global_policy().name != policy:
        keras.mixed_precision.set_global_policy(policy)
        logger.info("Keras dtype policy: %s", policy)
    return policy
