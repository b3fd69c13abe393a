"""Float comparisons that hold on every x86-64 processor of this machine kind.

Why there is a tolerance at all: TensorFlow (oneDNN), ONNX Runtime (MLAS) and the BLAS choose
their kernels by instruction set (AVX2, AVX-512, AMX) and by batch shape, so the same float32
network evaluated twice (another batch size, the compiled and the eager call, Keras and its
ONNX export, another processor) sums its dot products in another order. Bitwise equality is
asserted only where it is a product promise that holds by construction (the same call on the
same inputs: worker count, Dask against local, re-runs, a store read back).

How large the difference can be (one line per step, the constants are below):
- one K-term float32 dot product ``sum(x_i * w_i)`` is off by at most about
  ``lam * sqrt(K) * u * sum(|x_i * w_i|)`` (Higham & Mary's probabilistic bound, u = 2**-24,
  which holds with probability >= 1 - 2*exp(-lam**2 / 2) per output: lam = 6 gives 3e-8);
- two evaluations are each that far from the exact value: twice that between them;
- a network of ``depth`` such layers carries each layer's error forward, and its normalised,
  ReLU or softmax layers do not amplify it: the errors add, ``depth`` times the largest;
- ``sum(|x_i * w_i|)`` is taken as the outputs' scale (their largest magnitude over the whole
  array), so an output near zero through cancellation is held to the array's scale, not its own.
So ``|a - b| <= 2 * lam * sqrt(fan_in) * u * depth * scale``, with ``fan_in`` the largest number
of terms one output of a layer sums (kernel height x width x input channels for a convolution).
Measured on the musicnn test: 3.6e-6 absolute with oneDNN capped at AVX2, on a scale of ~1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FLOAT32_UNIT_ROUNDOFF = 2.0**-24
PROBABILISTIC_LAMBDA = 6.0


def network_tolerance(fan_in: int, depth: int) -> float:
    """Largest difference, relative to the outputs' scale, between two float32 evaluations of
    a network whose widest layer sums ``fan_in`` terms per output, ``depth`` layers deep."""
    if fan_in < 1 or depth < 1:
        raise ValueError("fan_in and depth are at least 1")
    return 2 * PROBABILISTIC_LAMBDA * math.sqrt(fan_in) * FLOAT32_UNIT_ROUNDOFF * depth


def network_shape(model) -> tuple[int, int]:
    """``(fan_in, depth)`` of a Keras model for :func:`network_tolerance`: the most terms one
    output of a convolution or dense layer sums (its kernel's size without the output axis),
    and how many such layers it has (every one counted, as if in one chain: an upper bound
    for networks with parallel branches, like musicnn's front end)."""
    kernels = [
        layer.kernel.shape
        for layer in model._flatten_layers(include_self=False)
        if hasattr(layer, "kernel") and layer.kernel is not None
    ]
    if not kernels:
        raise ValueError(f"{model.name}: no convolution or dense layer")
    return max(math.prod(shape[:-1]) for shape in kernels), len(kernels)


def assert_same_network_output(
    actual: np.ndarray,
    expected: np.ndarray,
    network: Any = None,
    *,
    fan_in: int | None = None,
    depth: int | None = None,
    scale: float | None = None,
) -> None:
    """``actual`` and ``expected`` are one float32 network's outputs on the same inputs,
    computed by other kernels: equal shapes, and every element within
    :func:`network_tolerance` of the outputs' scale (default: ``expected``'s largest
    magnitude). ``network`` (a Keras model) gives ``fan_in`` and ``depth`` by
    :func:`network_shape`; or pass them. The module's docstring has the derivation."""
    if network is not None:
        fan_in, depth = network_shape(network)
    if fan_in is None or depth is None:
        raise TypeError("pass the network, or its fan_in and depth")
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if scale is None:
        scale = float(np.abs(expected).max())
    assert scale > 0, "all-zero reference: nothing to compare against"
    tolerance = network_tolerance(fan_in, depth) * scale
    worst = float(np.abs(actual - expected).max())
    assert worst <= tolerance, (
        f"largest difference {worst:.3g} exceeds float32 rounding {tolerance:.3g} "
        f"(fan_in {fan_in}, depth {depth}, scale {scale:.3g})"
    )


def assert_same_decision(actual: np.ndarray, expected: np.ndarray, *, margin: float) -> None:
    """Two probability rows (or batches of them) choose the same class wherever the expected
    top class leads the runner-up by more than ``margin`` (twice the probabilities' tolerance:
    a closer race may flip under rounding and promises nothing)."""
    actual = np.atleast_2d(np.asarray(actual, np.float64))
    expected = np.atleast_2d(np.asarray(expected, np.float64))
    assert actual.shape == expected.shape
    ordered = np.sort(expected, axis=1)
    clear = ordered[:, -1] - ordered[:, -2] > margin
    assert clear.any(), "no row has a clear winner: the comparison would test nothing"
    np.testing.assert_array_equal(actual[clear].argmax(axis=1), expected[clear].argmax(axis=1))
