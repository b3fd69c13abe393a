"""Network batches on Dask workers (``runtime.executor: dask``): each worker process builds a
network once and keeps it for later batches."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from music_genre.errors import SetupError

from .audio_embedding import AudioEmbeddingExtractor
from .images import CutLevelFeatureExtractor
from .registry import WEIGHTS_PARAMETER, BackboneWeightsError

logger = logging.getLogger(__name__)

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
