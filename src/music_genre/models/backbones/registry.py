"""The backbone registry: ``BACKBONES`` (name -> ``BackboneSpec``), the errors, and the three
built-in backbones (VGG16, ResNet50, musicnn)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from music_genre.errors import SetupError

if TYPE_CHECKING:  # keras is imported lazily: importing this module must stay cheap
    import keras


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
    from music_genre.models import musicnn

    if weights is None:  # random initialisation (the caller seeded Keras)
        return musicnn.build_musicnn_model(name="musicnn_random")
    return musicnn.load_musicnn(weights)


def _musicnn_front_end(signal: np.ndarray, pad_mode: str) -> np.ndarray:
    from music_genre.models import musicnn

    return musicnn.musicnn_signal_patches(signal, pad_mode)


def _musicnn_embed(patches: Sequence[np.ndarray], model: Any) -> list[dict[str, np.ndarray]]:
    from music_genre.models import musicnn

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
