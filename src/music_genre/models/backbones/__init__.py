"""Pretrained backbones cut at intermediate layers: the transfer-learning feature extractors.

A package of one module per job (registry, weights, images, export, audio_embedding,
batches); this module re-exports their public names.

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

from .audio_embedding import (
    AudioEmbeddingExtractor,
    AudioWindow,
    load_window_front_end,
    load_window_signal,
)
from .batches import (
    NetworkBatch,
    audio_batch,
    cut_level_batch,
    worker_network_counts,
)
from .export import (
    EXPORT_IDENTITY,
    check_exported_cut_network,
    cut_network,
    export_cut_network,
    export_transfer_backbone,
)
from .images import (
    CutLevelFeatureExtractor,
    ImageSettings,
    compiled_call,
    cut_level_model,
    feature_sizes,
    prepare_images,
)
from .registry import (
    BACKBONES,
    INTERPOLATIONS,
    RANDOM_WEIGHTS_WORDS,
    WEIGHTS_PARAMETER,
    BackboneSpec,
    BackboneWeightsError,
    CutLevelError,
    get_backbone,
    register_backbone,
)
from .weights import (
    WeightsChoice,
    build_backbone,
    imagenet_help,
    keras_cache_dir,
    network_key,
    resolve_weights,
)

__all__ = [
    "WEIGHTS_PARAMETER",
    "RANDOM_WEIGHTS_WORDS",
    "INTERPOLATIONS",
    "BackboneWeightsError",
    "CutLevelError",
    "BackboneSpec",
    "BACKBONES",
    "register_backbone",
    "get_backbone",
    "WeightsChoice",
    "resolve_weights",
    "keras_cache_dir",
    "imagenet_help",
    "build_backbone",
    "network_key",
    "ImageSettings",
    "prepare_images",
    "cut_level_model",
    "compiled_call",
    "feature_sizes",
    "CutLevelFeatureExtractor",
    "EXPORT_IDENTITY",
    "cut_network",
    "export_cut_network",
    "export_transfer_backbone",
    "check_exported_cut_network",
    "AudioWindow",
    "load_window_signal",
    "load_window_front_end",
    "AudioEmbeddingExtractor",
    "worker_network_counts",
    "NetworkBatch",
    "cut_level_batch",
    "audio_batch",
]
