"""Backbone weights: the ``transfer.weights`` setting -> ``WeightsChoice``, and the full network
built with them (``build_backbone``); ``network_key`` names a network and its inputs."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .registry import (
    BACKBONES,
    RANDOM_WEIGHTS_WORDS,
    WEIGHTS_PARAMETER,
    BackboneSpec,
    BackboneWeightsError,
)

if TYPE_CHECKING:  # keras is imported lazily: importing this module must stay cheap
    import keras
logger = logging.getLogger(__name__)


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
            if self.path is None:
                raise ValueError("a file weights choice needs its path")
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

    from music_genre.infra.accelerator import log_compute_device

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
