"""The networks that prediction runs: a Keras model exported to ONNX and run by ONNX Runtime,
or the Keras model itself as one compiled call.

``import tensorflow`` alone takes 5-15 s on a 2-core machine; ONNX Runtime loads in a fraction
of a second and runs one clip of the study's CNN faster than TensorFlow. So every Keras model
that prediction uses is exported when it is saved (``KerasModelDataset(onnx_export=True)``):
the ``.onnx`` file beside the ``.keras`` file records the sha256 of the ``.keras`` file it was
made from and the largest difference to the Keras model's outputs on a probe batch, and is only
written when that difference is within :data:`ONNX_TOLERANCE`. Prediction then never imports
TensorFlow; an export that is missing or was made from another ``.keras`` file is refused by
:func:`load_exported`, and the caller falls back to the Keras model with a logged message.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

# Largest difference allowed between the exported and the Keras model's outputs, relative to
# the outputs' scale (their largest magnitude, at least 1: for probabilities an absolute
# difference). Both compute in float32 (machine epsilon 1.2e-7) but in different kernels and
# summation orders; the largest sums here (conv windows, the last Dense layer) have a few
# thousand terms, so rounding differences reach ~1e-6 of the scale (measured: 1.2e-6 on the
# demo CNN's probabilities). 1e-4 is two orders of magnitude above that and far below any
# difference that would change a reported probability (rounded to 4 decimals) by more than its
# last digit. Backbone features (transfer) are not bounded by 1: rounding errors grow with
# the magnitude of the sums, hence the relative measure.
ONNX_TOLERANCE = 1e-4
ONNX_OPSET = 18
PROBE_BATCH = 3
KERAS_SHA256_KEY = "keras_sha256"


class ExportedModelError(Exception):
    """The exported model cannot be used: the message says why and how to make it again."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def probe_batch(input_shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A fixed random batch in the model's input shape (batch dimension excluded): the
    export's outputs are compared with the Keras model's on it."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, (PROBE_BATCH, *input_shape)).astype(np.float32)


class OnnxModel:
    """An exported network run by ONNX Runtime: ``model(x)`` -> probabilities (numpy)."""

    runtime = "onnxruntime"

    def __init__(self, serialized: bytes, source: str = "") -> None:
        import onnxruntime

        self.serialized = serialized
        self.source = source
        options = onnxruntime.SessionOptions()
        # No busy-waiting of the worker threads after a call: on a small machine they would
        # take the CPU from the decoding and spectrogram work that follows in this process.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            serialized, options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.asarray(inputs, np.float32)})[0]

    # The served model pickles the ONNX bytes; the session is rebuilt once when it is loaded.
    def __getstate__(self) -> dict[str, Any]:
        return {"serialized": self.serialized, "source": self.source}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["serialized"], state["source"])  # type: ignore[misc]


class KerasNetwork:
    """The Keras model as one traced call (``model.predict`` costs ~0.1-0.3 s per call in
    overhead); the fallback when no valid export exists."""

    runtime = "keras"

    def __init__(self, model: Any) -> None:
        self.model = model
        self._compiled: Any = None

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        from music_genre.models.cnn import compiled_predictor, predict_probabilities

        if self._compiled is None:  # traced once
            self._compiled = compiled_predictor(self.model)
        return np.asarray(predict_probabilities(self._compiled, inputs))

    # Pickled (served model) as the Keras model's bytes, unpickled after the module that
    # registers the CNN's custom layers: a pickled model alone cannot be loaded without it.
    def __getstate__(self) -> dict[str, Any]:
        import pickle

        return {"model": pickle.dumps(self.model)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        import pickle

        import music_genre.models.cnn  # noqa: F401 - registers StudyImageScaling

        self.__init__(pickle.loads(state["model"]))  # type: ignore[misc]  # noqa: S301


def output_difference(exported: np.ndarray, expected: np.ndarray) -> float:
    """The largest difference between two outputs relative to their scale (the largest
    magnitude of ``expected``, at least 1): what :data:`ONNX_TOLERANCE` bounds."""
    expected = np.asarray(expected, np.float64)
    scale = max(1.0, float(np.abs(expected).max()))
    return float(np.abs(np.asarray(exported, np.float64) - expected).max()) / scale


def export_onnx(
    model: Any,
    metadata: dict[str, str] | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> OnnxModel:
    """``model(x, training=False)`` as an ONNX model (any batch size), checked against the
    Keras model on :func:`probe_batch`: raises ExportedModelError beyond ONNX_TOLERANCE
    (:func:`output_difference`). ``input_shape`` (batch excluded) fixes dimensions the model
    leaves open (musicnn's number of frames); default the model's own input shape."""
    import tensorflow as tf
    import tf2onnx

    shape = tuple(input_shape or model.input_shape[1:])
    spec = tf.TensorSpec((None, *shape), tf.float32, name="inputs")
    # training=False: the inference graph (BatchNormalization's moving statistics, no dropout)
    call = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    proto, _ = tf2onnx.convert.from_function(call, input_signature=[spec], opset=ONNX_OPSET)
    probe = probe_batch(shape)
    expected = call(probe).numpy()
    exported = OnnxModel(proto.SerializeToString())
    difference = output_difference(exported(probe), expected)
    if not difference <= ONNX_TOLERANCE:
        raise ExportedModelError(
            f"the ONNX export of {model.name} differs from the Keras model by {difference:.3g} "
            f"of its output scale (> {ONNX_TOLERANCE:g}) on the probe batch: not used"
        )
    for key, value in {**(metadata or {}), "max_abs_difference": f"{difference:.3g}"}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return OnnxModel(proto.SerializeToString(), source=model.name)


def save_onnx(exported: OnnxModel, path: str | Path) -> None:
    """Write atomically (:func:`music_genre.infra.atomic.atomic_path`)."""
    from music_genre.infra.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(exported.serialized)


def load_exported(onnx_path: str | Path, keras_path: str | Path) -> OnnxModel:
    """The export of ``keras_path``, or ExportedModelError when it is missing or was made from
    another ``.keras`` file (the model was retrained or replaced since)."""
    onnx_path, keras_path = Path(onnx_path), Path(keras_path)
    if not onnx_path.is_file():
        raise ExportedModelError(f"no exported model at {onnx_path}")
    exported = OnnxModel(onnx_path.read_bytes(), source=str(onnx_path))
    recorded = exported.metadata.get(KERAS_SHA256_KEY)
    if not keras_path.is_file() or recorded != file_sha256(keras_path):
        raise ExportedModelError(
            f"{onnx_path} was not exported from the current {keras_path} (sha256 differs)"
        )
    return exported


def as_network(model: Any) -> OnnxModel | KerasNetwork:
    """An exported model as it is; a Keras model as its compiled call."""
    return model if isinstance(model, OnnxModel | KerasNetwork) else KerasNetwork(model)
