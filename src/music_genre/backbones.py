"""Pretrained backbones cut at intermediate layers: the transfer-learning feature extractors.

A library module: the transfer pipeline extracts training features with it and the prediction
command reuses it for new audio, so both see exactly the same image preparation and network.

- ``BACKBONES``: registry name -> ``BackboneSpec`` (how to build the network, its own
  ``preprocess_input``, the study's cut levels, the ImageNet weights file Keras expects). Add a
  backbone with ``register_backbone``.
- ``resolve_weights``: the ``transfer.weights`` setting -> ``WeightsChoice`` (``imagenet``, a
  local file, or random initialisation, which is used only when asked for explicitly).
- ``build_backbone``: the full network with those weights; every way of failing to get the
  weights raises ``BackboneWeightsError`` saying how to fix it. Nothing falls back silently.
- ``prepare_images``: spectrogram -> the study's 0..255 image -> 224 x 224 -> 3 channels ->
  the backbone's ``preprocess_input``.
- ``CutLevelFeatureExtractor``: one forward pass per batch through a multi-output model, one
  flattened feature matrix per cut level; ``time_single_image`` measures ms per image.
- ``AudioEmbeddingExtractor``: backbones with their own audio front end (``input_kind="audio"``:
  musicnn, with the weights its wheel ships, ``msd`` / ``mtt``) embed a window of the audio file
  instead of the spectrogram image.
- ``cut_level_batch`` / ``audio_batch``: one batch of either on a Dask worker
  (``runtime.executor: dask``); an extractor pickles without its network, and each worker
  process builds the network once and keeps it for later batches.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from music_genre.errors import SetupError
from music_genre.spectrograms import to_study_image

if TYPE_CHECKING:  # keras is imported lazily: importing this module must stay cheap
    import keras

logger = logging.getLogger(__name__)

WEIGHTS_PARAMETER = "transfer.weights"
# Strings that ask for random initialisation explicitly (a CLI --params value arrives as text).
RANDOM_WEIGHTS_WORDS = ("null", "none", "random")
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian")


class BackboneWeightsError(SetupError, RuntimeError):
    """The requested backbone weights cannot be obtained or loaded; the message says how to fix it."""


class CutLevelError(SetupError, ValueError):
    """A configured cut level is not a layer of the backbone."""


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and read features out of it.

    ``build(weights)`` receives what ``keras.applications`` accepts: ``"imagenet"`` or ``None``
    (files are loaded by ``build_backbone`` itself, to name the file in errors).
    ``preprocess`` is the network's own ``preprocess_input`` (caffe-style BGR mean subtraction
    for VGG16 and ResNet50). ``prepare`` turns spectrograms into the network's input batch.
    """

    name: str
    build: Callable[[str | None], keras.Model]
    preprocess: Callable[[np.ndarray], np.ndarray]
    cut_levels: tuple[str, ...]
    input_size: tuple[int, int] = (224, 224)
    imagenet_file: str | None = None
    imagenet_url: str | None = None
    prepare: Callable[..., np.ndarray] | None = None  # None -> prepare_images (spectrogram image)
    description: str = ""
    # "spectrogram": fed the stored log-mel spectrogram images; "audio": the backbone has its
    # own front end and reads each track's audio file (AudioEmbeddingExtractor).
    input_kind: str = "spectrogram"
    # Weights shipped with the backbone itself: weights word -> what ``build`` receives
    # (musicnn: {"msd": "MSD_musicnn", "mtt": "MTT_musicnn"}).
    pretrained_weights: Mapping[str, str] = field(default_factory=dict)
    # Audio backbones: sample rate of their front end; ``audio_front_end(signal, pad_mode)``
    # -> the network's input for one track (a module-level function: worker processes run it
    # next to decoding); ``embed_front_ends(inputs, model)`` -> per track {cut: vector}, all
    # tracks through the network together.
    audio_sample_rate: int | None = None
    audio_front_end: Callable[[np.ndarray, str], Any] | None = None
    embed_front_ends: Callable[[Sequence[Any], Any], list[dict[str, np.ndarray]]] | None = None


def _vgg16(weights: str | None) -> keras.Model:
    import keras

    return keras.applications.VGG16(weights=weights, include_top=True)


def _vgg16_preprocess(x: np.ndarray) -> np.ndarray:
    import keras

    return keras.applications.vgg16.preprocess_input(x)


def _resnet50(weights: str | None) -> keras.Model:
    import keras

    return keras.applications.ResNet50(weights=weights, include_top=True)


def _resnet50_preprocess(x: np.ndarray) -> np.ndarray:
    import keras

    return keras.applications.resnet50.preprocess_input(x)


_KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications"

BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add (or replace) a backbone in the registry; returns it for use as a decorator result."""
    BACKBONES[spec.name] = spec
    return spec


register_backbone(
    BackboneSpec(
        name="vgg16",
        build=_vgg16,
        preprocess=_vgg16_preprocess,
        # block5_pool 7*7*512 = 25,088; fc1 and fc2 4,096 each.
        cut_levels=("block5_pool", "fc1", "fc2"),
        imagenet_file="vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        imagenet_url=f"{_KERAS_WEIGHTS}/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        description="VGG16 with its classification top (138,357,544 parameters)",
    )
)
register_backbone(
    BackboneSpec(
        name="resnet50",
        build=_resnet50,
        preprocess=_resnet50_preprocess,
        # conv5_block1_2_relu 7*7*512 = 25,088; avg_pool 2,048 (the study's table says 1000).
        cut_levels=("conv5_block1_2_relu", "avg_pool"),
        imagenet_file="resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        imagenet_url=f"{_KERAS_WEIGHTS}/resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        description="ResNet50 with its classification top (25,636,712 parameters)",
    )
)


def _unchanged(x: np.ndarray) -> np.ndarray:
    return x


def _musicnn(weights: str | None) -> keras.Model:
    from music_genre import musicnn

    if weights is None:  # random initialisation (the caller seeded Keras)
        return musicnn.build_musicnn_model(name="musicnn_random")
    return musicnn.load_musicnn(weights)


def _musicnn_front_end(signal: np.ndarray, pad_mode: str) -> np.ndarray:
    from music_genre import musicnn

    return musicnn.musicnn_signal_patches(signal, pad_mode)


def _musicnn_embed(patches: Sequence[np.ndarray], model: Any) -> list[dict[str, np.ndarray]]:
    from music_genre import musicnn

    return musicnn.musicnn_track_embeddings(patches, model)


register_backbone(
    BackboneSpec(
        name="musicnn",
        build=_musicnn,
        preprocess=_unchanged,  # a module function, not a lambda: the spec pickles by reference
        # Beyond the study: music-pretrained (Pons & Serra 2019), weights from the musicnn
        # wheel. penultimate 200, pooled 1,506 (max/mean over time), tags 50 probabilities.
        cut_levels=("penultimate", "pooled", "tags"),
        input_size=(187, 96),  # one patch: 187 frames x 96 mel bands of 16 kHz audio
        description="musicnn (MSD/MTT checkpoints of the musicnn 0.1.0 wheel, 787,330 "
        "parameters); per track the cut level averaged over 3-s patches",
        input_kind="audio",
        pretrained_weights={"msd": "MSD_musicnn", "mtt": "MTT_musicnn"},
        audio_sample_rate=16000,
        audio_front_end=_musicnn_front_end,
        embed_front_ends=_musicnn_embed,
    )
)


def get_backbone(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"Unknown backbone {name!r} in the transfer parameters: use one of "
            f"{sorted(BACKBONES)} (conf/base/parameters/transfer.yml)."
        ) from None


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightsChoice:
    """Where a backbone's weights come from: ``imagenet``, ``file`` (``path``), ``random``, or
    the name of weights the backbone ships itself (musicnn: ``msd``, ``mtt``)."""

    kind: str
    path: str | None = None
    seed: int | None = None

    @property
    def label(self) -> str:
        """What the report and MLflow show in the ``weights`` column."""
        if self.kind == "file":
            return f"file:{self.path}"
        return self.kind

    @classmethod
    def from_label(cls, label: str, seed: int | None = None) -> WeightsChoice:
        """The choice a ``label`` names (as stored with a trained model); the inverse of it."""
        if label == "random":
            return cls("random", seed=seed)
        if label.startswith("file:"):
            return cls("file", path=label.removeprefix("file:"))
        return cls(label)

    def fingerprint(self) -> str:
        """Identifies the weights' values: features computed with other weights never mix."""
        if self.kind == "imagenet":
            return "imagenet"
        if self.kind == "random":
            return f"random-seed{self.seed}"
        if self.kind == "file":
            return f"file-{_file_sha1(self.path)[:12]}"
        return self.kind  # weights shipped with the backbone (fixed by its pinned package)


def _file_sha1(path: str | os.PathLike) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(value: Any, backbone: str, seed: int | None = None) -> WeightsChoice:
    """Interpret ``transfer.weights`` for one backbone.

    ``value`` is ``"imagenet"``, a path to a local weights file, ``None`` (or the words null /
    none / random) for random initialisation with ``seed``, or a mapping backbone -> one of those
    when backbones need different files.
    """
    if isinstance(value, Mapping):
        if backbone not in value:
            raise BackboneWeightsError(
                f"{WEIGHTS_PARAMETER} is a mapping without an entry for backbone {backbone!r} "
                f"(it has {sorted(value)}): add `{backbone}: imagenet` (or a file path, or null "
                "for random initialisation)."
            )
        value = value[backbone]
    if value is None or (isinstance(value, str) and value.strip().lower() in RANDOM_WEIGHTS_WORDS):
        return WeightsChoice("random", seed=seed)
    if not isinstance(value, str | os.PathLike):
        raise BackboneWeightsError(
            f"{WEIGHTS_PARAMETER}={value!r} is not understood: use `imagenet`, a path to a local "
            "weights file (.h5), or null for random initialisation."
        )
    text = str(value).strip()
    spec = BACKBONES.get(backbone)
    if spec is not None and text.lower() in spec.pretrained_weights:
        return WeightsChoice(text.lower())
    if text.lower() == "imagenet":
        if spec is not None and spec.imagenet_url is None:
            raise BackboneWeightsError(
                f"{WEIGHTS_PARAMETER}: backbone {backbone!r} has no ImageNet weights; use one of "
                f"{sorted(spec.pretrained_weights) or ['a weights file path']} or null (random). "
                f"With several backbones, give a mapping, e.g. `weights: {{vgg16: imagenet, "
                f"{backbone}: {next(iter(spec.pretrained_weights), 'null')}}}`."
            )
        return WeightsChoice("imagenet")
    path = Path(text).expanduser()
    if not path.is_file():
        raise BackboneWeightsError(
            f"{WEIGHTS_PARAMETER}: weights file {path} for backbone {backbone!r} does not exist"
            f"{' (it is a folder)' if path.is_dir() else ''}. Give the path of a Keras weights "
            f"file for {backbone} with its top (e.g. {_imagenet_file_hint(backbone)}), or "
            "`imagenet` to let Keras download it, or null for random initialisation."
        )
    return WeightsChoice("file", path=str(path.resolve()))


def _imagenet_file_hint(backbone: str) -> str:
    spec = BACKBONES.get(backbone)
    return spec.imagenet_file if spec and spec.imagenet_file else "<backbone>_weights.h5"


def keras_cache_dir() -> Path:
    """Where ``keras.utils.get_file`` caches downloads ($KERAS_HOME, else ~/.keras)."""
    try:
        from keras.src.backend.config import keras_home

        return Path(os.path.expanduser(keras_home()))
    except ImportError:  # private API moved: mirror its documented rule
        return Path(os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras")))


def imagenet_help(spec: BackboneSpec) -> str:
    """How to supply ImageNet weights by hand on a machine that cannot download them."""
    target = keras_cache_dir() / "models" / (spec.imagenet_file or "<file>")
    return (
        f"To use ImageNet weights offline, download {spec.imagenet_url} on a connected machine "
        f"and place it at {target} (Keras checks its hash and uses it from there), or point "
        f"{WEIGHTS_PARAMETER} at local files, one per backbone, in "
        f"conf/local/parameters/transfer.yml: `transfer: {{weights: {{{spec.name}: "
        f"/path/to/{spec.imagenet_file}, ...}}}}`. `{WEIGHTS_PARAMETER}: null` gives a randomly "
        "initialised network instead: it runs offline, but its features are not ImageNet "
        "features."
    )


_initializer_lock = threading.Lock()


@contextmanager
def _initializer_seeds(seed: int | None) -> Iterator[None]:
    """Keras gives each unseeded initializer a seed drawn from Python's global ``random``,
    which other threads of the process draw from too (a Dask worker's or client's event loop):
    the same ``seed`` then gave other weights now and then. During a build, Keras draws from a
    private generator seeded as the global one is (the same draws, without the other threads')."""
    from keras.src.random import seed_generator  # private: where Keras draws those seeds

    if seed is None or getattr(seed_generator, "python_random", None) is not random:
        if seed is not None:
            logger.warning(
                "Keras no longer draws initializer seeds where this project expects "
                "(keras.src.random.seed_generator.python_random): random weights of seed %s "
                "may differ between processes",
                seed,
            )
        yield
        return
    with _initializer_lock:
        seed_generator.python_random = random.Random(int(seed))  # type: ignore[attr-defined]
        try:
            yield
        finally:
            seed_generator.python_random = random  # type: ignore[attr-defined]


def build_backbone(spec: BackboneSpec, weights: WeightsChoice) -> keras.Model:
    """The full network with the chosen weights; any failure names its cause and the fix."""
    import keras

    from music_genre.accelerator import log_compute_device

    log_compute_device()
    if weights.kind == "random":
        if weights.seed is not None:
            keras.utils.set_random_seed(int(weights.seed))
        logger.warning(
            "%s: RANDOM initialisation (%s=null, seed %s): features are not pretrained features",
            spec.name,
            WEIGHTS_PARAMETER,
            weights.seed,
        )
        with _initializer_seeds(weights.seed):
            return spec.build(None)
    if weights.kind == "imagenet":
        if spec.imagenet_url is None:
            raise BackboneWeightsError(
                f"Backbone {spec.name!r} has no ImageNet weights: set {WEIGHTS_PARAMETER} to a "
                "local weights file or null."
            )
        try:
            return spec.build("imagenet")
        except Exception as exc:  # noqa: BLE001 - Keras raises bare Exception on fetch failure
            raise BackboneWeightsError(
                f"Could not get the ImageNet weights of {spec.name} ({exc}). {imagenet_help(spec)}"
            ) from exc
    if weights.kind == "file":
        path = Path(weights.path or "")
        if not path.is_file():
            raise BackboneWeightsError(
                f"{WEIGHTS_PARAMETER}: weights file {path} for {spec.name} does not exist."
            )
        model = spec.build(None)
        try:
            model.load_weights(str(path))
        except Exception as exc:  # noqa: BLE001 - h5py/keras raise many types; name the file
            raise BackboneWeightsError(
                f"{WEIGHTS_PARAMETER}: cannot load {path} into {spec.name} with its top: {exc}. "
                f"It must be a Keras weights file of the same architecture, e.g. "
                f"{spec.imagenet_file} from {spec.imagenet_url}."
            ) from exc
        return model
    if weights.kind in spec.pretrained_weights:
        try:
            return spec.build(spec.pretrained_weights[weights.kind])
        except (ModuleNotFoundError, FileNotFoundError) as exc:
            raise BackboneWeightsError(
                f"Could not load the {weights.kind} weights of {spec.name}: {exc}"
            ) from exc
    raise BackboneWeightsError(
        f"{WEIGHTS_PARAMETER}: weights {weights.label!r} are not available for {spec.name} "
        f"(it has {sorted(spec.pretrained_weights) or 'no weights of its own'})."
    )


# --------------------------------------------------------------------------------------------
# Input images
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The network of one cut level, exported to ONNX for prediction
# --------------------------------------------------------------------------------------------

# What an exported cut-level network is: recorded in the export, compared with the transfer
# model it is used with (features of other weights or another cut would mean nothing to it).
EXPORT_IDENTITY = ("backbone", "weights_fingerprint", "cut_level")


def cut_network(spec: BackboneSpec, weights: WeightsChoice, cut_level: str) -> keras.Model:
    """The backbone up to one cut level as a single-output model (what prediction runs)."""
    import keras

    model = build_backbone(spec, weights)
    if spec.input_kind == "audio":
        if cut_level not in spec.cut_levels:
            raise CutLevelError(f"{cut_level!r} is not an output of {spec.name}")
        output = model.output[cut_level]  # musicnn: one output per cut level
    else:
        output = cut_level_model(model, (cut_level,), spec.name).output
    return keras.Model(model.input, output, name=f"{spec.name}_{cut_level}")


def export_cut_network(spec: BackboneSpec, weights: WeightsChoice, cut_level: str) -> Any:
    """:func:`cut_network` exported to ONNX and checked against Keras
    (:func:`music_genre.inference.export_onnx`), recording :data:`EXPORT_IDENTITY`."""
    from music_genre.inference import export_onnx

    # musicnn reads patches of a fixed number of frames; the image backbones' inputs are fixed
    shape = spec.input_size if spec.input_kind == "audio" else None
    return export_onnx(
        cut_network(spec, weights, cut_level),
        {
            "backbone": spec.name,
            "weights": weights.label,
            "weights_fingerprint": weights.fingerprint(),
            "cut_level": cut_level,
        },
        input_shape=shape,
    )


def check_exported_cut_network(exported: Any, expected: Mapping[str, Any]) -> Any:
    """``exported`` when it records the same :data:`EXPORT_IDENTITY` as ``expected`` (a
    transfer model's bundle), else ExportedModelError naming what differs."""
    from music_genre.inference import ExportedModelError

    recorded = getattr(exported, "metadata", {})
    differs = [
        f"{key} {recorded.get(key)!r} (the model's: {expected.get(key)!r})"
        for key in EXPORT_IDENTITY
        if recorded.get(key) != str(expected.get(key))
    ]
    if differs:
        raise ExportedModelError(
            f"the exported backbone {getattr(exported, 'source', '')} does not belong to this "
            f"transfer model: {', '.join(differs)}"
        )
    return exported


# --------------------------------------------------------------------------------------------
# Audio backbones (their own front end on the audio file: musicnn)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioWindow:
    """Which part of each track an audio backbone reads: the first ``duration_s`` seconds (the
    same window the spectrograms cover), decoded to the backbone's sample rate, mono."""

    duration_s: float = 29.70
    pad_mode: str = "repeat"  # a clip shorter than one network patch is looped (or zeros)
    workers: int | None = None  # decoding processes (None: every core); not in the fingerprint

    def __post_init__(self) -> None:
        if not float(self.duration_s) > 0:
            raise ValueError(
                f"transfer.audio.duration_s={self.duration_s!r}: use a positive number of "
                "seconds, e.g. 29.70 (the spectrograms' window)."
            )
        if self.pad_mode not in ("repeat", "zeros"):
            raise ValueError(f"transfer.audio.pad_mode={self.pad_mode!r}: use 'repeat' or 'zeros'.")

    def fingerprint(self) -> str:
        return f"audio-{float(self.duration_s):g}s-{self.pad_mode}"


def load_window_signal(
    path: str, sample_rate: int, duration_s: float, offset_s: float = 0.0
) -> np.ndarray:
    """One window of ``path``, mono, at ``sample_rate`` (``load_audio``); a module function so
    that worker processes can run it without the network."""
    from music_genre.audio import load_audio

    signal, _ = load_audio(
        path, sample_rate=sample_rate, mono=True, duration_s=duration_s, offset_s=offset_s
    )
    if signal.size == 0:
        raise ValueError(f"{path}: no audio samples at offset {offset_s:g} s")
    if not np.isfinite(signal).all():
        raise ValueError(f"{path}: decoded audio contains NaN or infinite values")
    return signal


def load_window_front_end(
    front_end: Callable[[np.ndarray, str], Any],
    pad_mode: str,
    path: str,
    sample_rate: int,
    duration_s: float,
    offset_s: float = 0.0,
) -> Any:
    """Decode one window (:func:`load_window_signal`) and run the backbone's front end on it:
    the per-track work, which worker processes do while the network runs elsewhere."""
    return front_end(load_window_signal(path, sample_rate, duration_s, offset_s), pad_mode)


@dataclass
class AudioEmbeddingExtractor:
    """Audio file -> {cut level: vector} through a backbone with its own front end.

    The same object serves the transfer pipeline (window at offset 0) and prediction (windows
    at other offsets), so both decode, resample and embed identically. The network is built on
    first use.
    """

    spec: BackboneSpec
    weights: WeightsChoice
    cut_levels: tuple[str, ...]
    window: AudioWindow = field(default_factory=AudioWindow)
    # The exported network of the one cut level (prediction): run instead of the Keras model.
    network: Any = None
    _model: Any = field(default=None, init=False, repr=False)
    _network_key: tuple | None = field(default=None, init=False, repr=False)

    @property
    def network_key(self) -> tuple:
        """What defines the network and its inputs (:func:`network_key`)."""
        if self._network_key is None:
            self._network_key = network_key(
                self.spec, self.weights, self.cut_levels, self.window.fingerprint()
            )
        return self._network_key

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the built network (a worker builds its own: :func:`audio_batch`)."""
        self.network_key  # noqa: B018 - computed once here (a weights file is hashed once)
        return {**self.__dict__, "_model": None}

    def build_network(self) -> None:
        self.model  # noqa: B018 - builds the model

    def __post_init__(self) -> None:
        if self.network is not None and len(self.cut_levels) != 1:
            raise ValueError("an exported network gives one cut level")
        if (
            self.spec.input_kind != "audio"
            or self.spec.audio_front_end is None
            or self.spec.embed_front_ends is None
        ):
            raise ValueError(f"{self.spec.name} is not an audio backbone")
        unknown = [cut for cut in self.cut_levels if cut not in self.spec.cut_levels]
        if unknown:
            raise CutLevelError(
                f"Cut level(s) {unknown} are not outputs of {self.spec.name}: use "
                f"{list(self.spec.cut_levels)}. Fix the experiments in "
                "conf/base/parameters/transfer.yml."
            )

    @property
    def model(self) -> Any:
        """The Keras model (built on first use), or the exported network when given."""
        if self.network is not None:
            return self.network
        if self._model is None:
            self._model = build_backbone(self.spec, self.weights)
        return self._model

    @property
    def built(self) -> bool:
        return self._model is not None

    @property
    def signal_settings(self) -> tuple[int, float]:
        """(sample rate, window seconds): the arguments of :func:`load_window_signal`."""
        return int(self.spec.audio_sample_rate or 16000), float(self.window.duration_s)

    def load_signal(self, path: str, offset_s: float = 0.0) -> np.ndarray:
        """The window of ``path`` at the backbone's rate, mono (``load_audio``)."""
        return load_window_signal(path, *self.signal_settings, offset_s)

    def front_end_task(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """``(function, leading arguments)``: ``function(*leading, path, rate, seconds)``
        decodes a window and runs the front end (:func:`load_window_front_end`); picklable,
        for worker processes."""
        assert self.spec.audio_front_end is not None
        return load_window_front_end, (self.spec.audio_front_end, self.window.pad_mode)

    def front_end(self, signal: np.ndarray) -> Any:
        """The network's input for one decoded window (musicnn: its 3-s log-mel patches)."""
        assert self.spec.audio_front_end is not None
        return self.spec.audio_front_end(signal, self.window.pad_mode)

    def embed_front_ends(self, inputs: Sequence[Any]) -> list[dict[str, np.ndarray]]:
        """Per track {cut: vector} for the front-end outputs of many tracks (musicnn: their
        patches concatenated, run through the network in calls of ``MAX_PATCHES_PER_CALL``)."""
        assert self.spec.embed_front_ends is not None
        rows = self.spec.embed_front_ends(list(inputs), self.model)
        return [
            {cut: np.asarray(row[cut], dtype=np.float32).reshape(-1) for cut in self.cut_levels}
            for row in rows
        ]

    def embed(self, signal: np.ndarray) -> dict[str, np.ndarray]:
        return self.embed_front_ends([self.front_end(signal)])[0]

    def __call__(self, path: str, offsets: Sequence[float] = (0.0,)) -> dict[str, np.ndarray]:
        """{cut: (len(offsets), dim)} for windows of one file (one network pass for all)."""
        rows = self.embed_front_ends(
            [self.front_end(self.load_signal(path, offset)) for offset in offsets]
        )
        return {cut: np.stack([r[cut] for r in rows]) for cut in self.cut_levels}

    def time_single_clip(self, signal: np.ndarray, runs: int = 10) -> dict[str, float]:
        """Milliseconds per clip: front end + network on one decoded window (batch of one
        clip), mean of ``runs`` after a warm-up. Every cut level comes out of the same pass,
        so all get this time."""
        self.embed(signal)
        start = time.perf_counter()
        for _ in range(runs):
            self.embed(signal)
        elapsed = (time.perf_counter() - start) / runs * 1000.0
        return {cut: elapsed for cut in self.cut_levels}


# --------------------------------------------------------------------------------------------
# Network batches on Dask workers (runtime.executor: dask)
# --------------------------------------------------------------------------------------------


def network_key(
    spec: BackboneSpec, weights: WeightsChoice, cut_levels: Sequence[str], inputs: str
) -> tuple:
    """What defines an extractor's network and inputs: backbone, weights (their fingerprint:
    a weights file by its content), cut levels and input settings' fingerprint."""
    return (
        spec.name,
        weights.label,
        weights.seed,
        weights.fingerprint(),
        tuple(cut_levels),
        inputs,
    )


# The network this worker process holds: the extractor of the latest key a batch asked for,
# built once and reused by every later batch of that key. One at a time: the next key (the
# next backbone) frees it first, so a worker needs the memory of one network. The lock makes a
# worker with several threads build it once.
_worker_lock = threading.Lock()
_worker_extractors: dict[tuple, Any] = {}
_worker_counts: dict[str, Counter[str]] = {"builds": Counter(), "batches": Counter()}


def worker_network_counts() -> dict[str, dict[str, int]]:
    """Networks built and batches run in this process by :func:`cut_level_batch` and
    :func:`audio_batch`, by backbone (``client.run(worker_network_counts)`` asks each worker)."""
    return {name: dict(counts) for name, counts in _worker_counts.items()}


@dataclass
class NetworkBatch:
    """What a batch task returns: the features of the tracks it computed (rows in ``item_ids``
    order), the tracks whose input could not be read (track -> reason), and where and how long
    it ran."""

    item_ids: list[str]
    features: dict[str, np.ndarray]
    failures: dict[str, str]
    worker: str  # host:pid
    input_seconds: float  # reading the inputs (images / decoding and front end), on the worker
    network_seconds: float  # the network on the batch, on the worker
    build_seconds: float | None = None  # building the network, when this batch built it
    # The network could not be built for a reason the user fixes (weights, cut level): the
    # driver raises it, so the run ends with its message (music_genre.errors).
    setup_error: SetupError | None = None


def _tensorflow_threads_of_this_worker() -> None:
    """TensorFlow's thread pools sized to this Dask worker's threads (not every core), before
    TensorFlow starts in the process: workers run one per core or so, and each would otherwise
    run its network on every core. (The features do not depend on the thread count: VGG16,
    ResNet50 and musicnn gave bit-identical outputs with 1 to 4 threads.)"""
    from distributed import get_worker

    try:
        threads = int(get_worker().state.nthreads)
    except ValueError:  # not in a Dask worker
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already started in this process: it keeps its pools
        logger.info("TensorFlow already started in this worker: its thread pools stay as they are")


def _worker_extractor(extractor: Any) -> tuple[Any, float | None]:
    """This process's extractor for ``extractor.network_key`` with its network built, and the
    seconds the build took when this call built it (else None)."""
    key = extractor.network_key
    with _worker_lock:
        cached = _worker_extractors.get(key)
        if cached is not None:
            return cached, None
        _worker_extractors.clear()
        started = time.perf_counter()
        if extractor.weights.kind == "random" and extractor.weights.seed is None:
            raise BackboneWeightsError(
                f"{WEIGHTS_PARAMETER}=null without transfer.random_seed: each worker would draw "
                "other random weights. Set transfer.random_seed (e.g. 42)."
            )
        if extractor.weights.kind == "file":
            try:
                same = extractor.weights.fingerprint() == key[3]
            except OSError as exc:
                raise BackboneWeightsError(
                    f"{WEIGHTS_PARAMETER}: worker {socket.gethostname()} cannot read the weights "
                    f"file ({exc}): every worker needs the driver's file at the same path."
                ) from exc
            if not same:
                raise BackboneWeightsError(
                    f"{WEIGHTS_PARAMETER}: the weights file {extractor.weights.path} on worker "
                    f"{socket.gethostname()} differs from the driver's: every worker needs the "
                    "same file at the same path."
                )
        if not _worker_counts["builds"]:
            _tensorflow_threads_of_this_worker()
        extractor.build_network()
        _worker_extractors[key] = extractor
        _worker_counts["builds"][extractor.spec.name] += 1
        return extractor, time.perf_counter() - started


def _network_batch(
    extractor: Any,
    items: Sequence[tuple[str, Any]],
    read: Callable[[Any, Any], Any],
    run: Callable[[Any, list[Any]], dict[str, np.ndarray]],
) -> NetworkBatch:
    """``read(worker's extractor, item)`` for each track (a failure costs that track), then
    ``run(worker's extractor, inputs)`` for the batch, with the network this process keeps."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        extractor, build_seconds = _worker_extractor(extractor)
    except SetupError as exc:
        return NetworkBatch([], {}, {}, worker, 0.0, 0.0, setup_error=exc)
    started = time.perf_counter()
    ids: list[str] = []
    inputs: list[Any] = []
    failures: dict[str, str] = {}
    for track_id, item in items:
        try:
            inputs.append(read(extractor, item))
        except Exception as exc:  # noqa: BLE001 - one bad track never fails the batch
            failures[track_id] = f"{type(exc).__name__}: {exc}"
            continue
        ids.append(track_id)
    inputs_read = time.perf_counter()
    # A network failure is not a track's fault (weights, memory): it fails the task.
    features = run(extractor, inputs) if inputs else {}
    with _worker_lock:
        _worker_counts["batches"][extractor.spec.name] += 1
    return NetworkBatch(
        ids,
        features,
        failures,
        worker,
        inputs_read - started,
        time.perf_counter() - inputs_read,
        build_seconds,
    )


def _prepared_image(extractor: CutLevelFeatureExtractor, spectrogram: np.ndarray) -> np.ndarray:
    # alone, as the driver prepares each image locally
    return extractor.prepare([np.asarray(spectrogram, dtype=np.float32)])[0]


def _image_features(
    extractor: CutLevelFeatureExtractor, images: list[np.ndarray]
) -> dict[str, np.ndarray]:
    return extractor.features_of_inputs(np.stack(images))


def cut_level_batch(
    extractor: CutLevelFeatureExtractor, items: Sequence[tuple[str, np.ndarray]]
) -> NetworkBatch:
    """A Dask task: ``(track, spectrogram)`` pairs -> the features at every cut level. Each
    image is prepared alone, as locally, then the batch goes through this worker's copy of the
    network in one pass."""
    return _network_batch(extractor, items, _prepared_image, _image_features)


def _front_end_of_file(extractor: AudioEmbeddingExtractor, path: str) -> Any:
    return extractor.front_end(extractor.load_signal(path))


def _audio_features(extractor: AudioEmbeddingExtractor, inputs: list[Any]) -> dict[str, np.ndarray]:
    rows = extractor.embed_front_ends(inputs)
    return {cut: np.stack([row[cut] for row in rows]) for cut in extractor.cut_levels}


def audio_batch(
    extractor: AudioEmbeddingExtractor, items: Sequence[tuple[str, str]]
) -> NetworkBatch:
    """A Dask task: ``(track, audio path)`` pairs -> the embeddings at every cut level: each
    window decoded and through the front end here (as the local workers do), then every
    track's patches through this worker's copy of the network together (as the driver does
    locally, :meth:`AudioEmbeddingExtractor.embed_front_ends`)."""
    return _network_batch(extractor, items, _front_end_of_file, _audio_features)
