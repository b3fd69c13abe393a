"""Input images and the cut-level extractor: spectrogram -> the backbone's input image
(``prepare_images``), one forward pass per batch through a multi-output model
(``CutLevelFeatureExtractor``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from music_genre.audio.spectrograms import to_study_image

from .registry import BACKBONES, INTERPOLATIONS, BackboneSpec, CutLevelError, get_backbone
from .weights import WeightsChoice, build_backbone, network_key

if TYPE_CHECKING:  # keras is imported lazily: importing this module must stay cheap
    import keras


@dataclass(frozen=True)
class ImageSettings:
    """How a spectrogram becomes the backbone's input image."""

    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"transfer.image.interpolation={self.interpolation!r}: use one of {INTERPOLATIONS}."
            )

    def fingerprint(self) -> str:
        return f"img-{self.interpolation}"


def prepare_images(
    spectrograms: Sequence[np.ndarray], spec: BackboneSpec, image: ImageSettings = ImageSettings()
) -> np.ndarray:
    """Spectrograms (dB) -> the study's 0..255 image -> resized -> gray in 3 channels ->
    the backbone's ``preprocess_input``. Returns float32 (n, height, width, 3)."""
    import tensorflow as tf

    images = [to_study_image(s)[..., np.newaxis] for s in spectrograms]
    height, width = spec.input_size
    batch = np.empty((len(images), height, width, 1), dtype=np.float32)
    for i, img in enumerate(images):  # one at a time: spectrograms may differ in length
        batch[i] = tf.image.resize(img, (height, width), method=image.interpolation).numpy()
    rgb = np.repeat(batch, 3, axis=-1)
    return np.asarray(spec.preprocess(rgb), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Cut-level features
# --------------------------------------------------------------------------------------------


def cut_level_model(model: keras.Model, cut_levels: Sequence[str], name: str) -> keras.Model:
    """A model with one output per cut level, sharing ``model``'s layers and weights."""
    import keras

    names = [layer.name for layer in model.layers]
    unknown = [cut for cut in cut_levels if cut not in names]
    if unknown:
        raise CutLevelError(
            f"Cut level(s) {unknown} are not layers of {name}. Valid names include the study's "
            f"{list(get_backbone(name).cut_levels) if name in BACKBONES else []}; all layers: "
            f"{names}. Fix the experiments in conf/base/parameters/transfer.yml."
        )
    outputs = [model.get_layer(cut).output for cut in cut_levels]
    return keras.Model(model.input, outputs, name=f"{name}_cut_levels")


def compiled_call(model: keras.Model) -> Callable[[np.ndarray], Any]:
    """``model(x, training=False)`` as a graph traced once for any batch size. An eager call
    runs op by op: ResNet50's ~175 layers (with unfused batch norms) then cost more than
    VGG16's 23, although ResNet50 needs about a third of VGG16's arithmetic."""
    import tensorflow as tf

    shape = (None, *(int(d) for d in model.input.shape[1:]))
    spec = tf.TensorSpec(shape, tf.float32)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec])


def feature_sizes(model: keras.Model, cut_levels: Sequence[str]) -> dict[str, int]:
    """Flattened feature size of each cut level (block5_pool -> 25,088)."""
    return {cut: int(np.prod(model.get_layer(cut).output.shape[1:])) for cut in cut_levels}


@dataclass
class CutLevelFeatureExtractor:
    """Spectrograms -> {cut level: (n, features)} float32 in one forward pass per batch.

    The network is built on first use, so a re-run that finds every feature stored never
    loads it.
    """

    spec: BackboneSpec
    weights: WeightsChoice
    cut_levels: tuple[str, ...]
    image: ImageSettings = field(default_factory=ImageSettings)
    # The exported network of the one cut level (prediction): run instead of the Keras model.
    network: Any = None
    _model: Any = field(default=None, init=False, repr=False)
    _cut_model: Any = field(default=None, init=False, repr=False)
    _cut_call: Any = field(default=None, init=False, repr=False)
    _network_key: tuple | None = field(default=None, init=False, repr=False)

    @property
    def network_key(self) -> tuple:
        """What defines the network and its inputs (:func:`network_key`)."""
        if self._network_key is None:
            self._network_key = network_key(
                self.spec, self.weights, self.cut_levels, self.image.fingerprint()
            )
        return self._network_key

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the built network (a worker builds its own: :func:`cut_level_batch`)."""
        self.network_key  # noqa: B018 - computed once here (a weights file is hashed once)
        return {**self.__dict__, "_model": None, "_cut_model": None, "_cut_call": None}

    def build_network(self) -> None:
        self.cut_model  # noqa: B018 - builds the model and its compiled call

    @property
    def cut_model(self) -> keras.Model:
        if self._cut_model is None:
            self._model = build_backbone(self.spec, self.weights)
            self._cut_model = cut_level_model(self._model, self.cut_levels, self.spec.name)
            self._cut_call = compiled_call(self._cut_model)
        return self._cut_model

    @property
    def built(self) -> bool:
        return self._cut_model is not None

    def prepare(self, spectrograms: Sequence[np.ndarray]) -> np.ndarray:
        if self.spec.prepare is not None:
            return self.spec.prepare(spectrograms, self.spec, self.image)
        return prepare_images(spectrograms, self.spec, self.image)

    def features_of_inputs(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        if self.network is not None:
            outputs = [self.network(np.asarray(inputs, dtype=np.float32))]
        else:
            self.cut_model  # noqa: B018 - builds the model and its compiled call
            outputs = self._cut_call(np.asarray(inputs, dtype=np.float32))
        if not isinstance(outputs, list | tuple):
            outputs = [outputs]
        return {
            cut: np.asarray(out, dtype=np.float32).reshape(len(inputs), -1)
            for cut, out in zip(self.cut_levels, outputs, strict=True)
        }

    def __call__(self, spectrograms: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        return self.features_of_inputs(self.prepare(spectrograms))

    def feature_sizes(self) -> dict[str, int]:
        self.cut_model  # noqa: B018 - builds the model
        return feature_sizes(self._model, self.cut_levels)

    def time_single_image(self, spectrogram: np.ndarray, runs: int = 10) -> dict[str, float]:
        """Milliseconds per image for each cut level, as the study measured (Table 13): the
        network up to that cut on one prepared image (a compiled call, batch 1), mean of
        ``runs`` calls after a warm-up call that traces the graph."""
        import keras

        x = self.prepare([spectrogram])
        self.cut_model  # noqa: B018 - builds the model
        timings = {}
        for cut in self.cut_levels:
            single = compiled_call(
                keras.Model(self._model.input, self._model.get_layer(cut).output)
            )
            np.asarray(single(x))  # warm-up: traces the graph
            start = time.perf_counter()
            for _ in range(runs):
                np.asarray(single(x))
            timings[cut] = (time.perf_counter() - start) / runs * 1000.0
        return timings
