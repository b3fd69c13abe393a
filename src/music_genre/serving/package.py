"""The genre predictor as a self-contained MLflow model: it loads where the project is not
installed (``mlflow models serve --env-manager uv`` builds its environment from the model's own
requirements).

What :func:`log_genre_predictor` logs under the run's ``model``:

- **artifacts**: every fitted part of the predictor as a file of its own: the ONNX exports of
  the networks (CNN, MLP, the transfer backbone's cut level; fusion members too) as ``.onnx``,
  the scikit-learn parts (the handcrafted scaler, the transfer scaler/PCA/classifier) as numpy
  arrays (``.npz``, :mod:`music_genre.models.array_estimators`; a pickle where they have no
  exact array form), the class names as JSON, and the rest of the predictor (settings, labels: no
  network, no estimator) as ``predictor.pkl``;
- a **signature** (input: optional string columns ``audio``, ``name``, ``path``; output: path,
  genre, one probability per genre, error) and an **input example** (a short synthetic MP3's
  bytes, base64, in the ``audio`` column);
- **pinned pip requirements**: the installed versions of what the served predictor imports
  (:data:`SERVE_REQUIREMENTS`; TensorFlow only when a network could not be exported);
- the package's source as **code_paths**, so ``music_genre.serving`` imports in that
  environment.

The pickled python model (:class:`~music_genre.serving.served_model.GenrePredictorModel`)
holds only the limits; ``load_context`` rebuilds the predictor from the artifacts.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import pickle
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from music_genre.infra.atomic import atomic_folder
from music_genre.models.array_estimators import ArrayEstimator, NotCompactable, compact_estimator
from music_genre.models.inference import OnnxModel, file_sha256
from music_genre.tracking.requirements import pinned_requirements

from .fusion import FusionPredictor, Predictor
from .predictors import CnnPredictor, HandcraftedPredictor, PredictionError
from .transfer import TransferPredictor

logger = logging.getLogger(__name__)

# What the served predictor imports (numpy, pandas, ONNX Runtime, soundfile/soxr for decoding
# and resampling, scikit-learn for the scaler/PCA/classifier, fsspec for the location checks)
# and MLflow's scoring server: pinned to the versions installed here.
SERVE_REQUIREMENTS = (
    "mlflow",
    "numpy",
    "pandas",
    "scikit-learn",
    "onnxruntime",
    "soundfile",
    "soxr",
    "fsspec",
)
# Only when a network stayed Keras (its export did not match): the served model then needs them.
KERAS_REQUIREMENTS = ("tensorflow", "keras")
PREDICTOR = "predictor"  # artifact: the predictor without its networks and estimators
CLASS_NAMES = "class_names"  # artifact: the genres, in the order of the probabilities
# Where the serving pipeline writes the packaged predictor (the catalog's
# genre_predictor_package; a test checks they agree): genre-predict reads it without Kedro.
PACKAGE_FOLDER = Path("data/06_models/genre_predictor")
MANIFEST = "package.json"  # a packaged predictor folder's list of files and their checksums
EXAMPLE_SECONDS = 4.0  # the input example's length: above the default min_seconds (3 s)


class PackageError(PredictionError):
    """A packaged predictor folder is missing or damaged (the message names the file and the
    fix)."""


@dataclass
class _Slot:
    """One fitted part of a predictor: ``owner[key]`` (a mapping) or ``owner.key``."""

    name: str
    owner: Any
    key: str
    network: bool

    def get(self) -> Any:
        return (
            self.owner[self.key] if isinstance(self.owner, dict) else getattr(self.owner, self.key)
        )

    def set(self, value: Any) -> None:
        if isinstance(self.owner, dict):
            self.owner[self.key] = value
        else:
            setattr(self.owner, self.key, value)


def _slots(predictor: Predictor, prefix: str = "") -> Iterator[_Slot]:
    """The fitted parts of ``predictor``, in a fixed order (the same for a predictor and its
    skeleton: names are the artifacts' names)."""
    if isinstance(predictor, FusionPredictor):
        for i, member in enumerate(predictor.members):
            yield from _slots(member, f"{prefix}member{i}_")
    elif isinstance(predictor, TransferPredictor):
        yield _Slot(f"{prefix}backbone", predictor, "backbone", network=True)
        yield _Slot(f"{prefix}classifier", predictor.bundle, "model", network=False)
    elif isinstance(predictor, HandcraftedPredictor):
        yield _Slot(f"{prefix}network", predictor, "model", network=True)
        yield _Slot(f"{prefix}scaler", predictor, "scaler", network=False)
    elif isinstance(predictor, CnnPredictor):
        yield _Slot(f"{prefix}network", predictor, "model", network=True)


def _clone(predictor: Predictor) -> Predictor:
    """A copy whose attributes (and transfer/fusion bundle, fusion members) can be replaced
    without touching ``predictor``; built without __getstate__ (which would pickle a Keras
    network)."""
    clone = object.__new__(type(predictor))
    clone.__dict__.update(predictor.__dict__)
    if isinstance(clone, TransferPredictor | FusionPredictor):
        clone.bundle = dict(clone.bundle)
    if isinstance(clone, FusionPredictor):
        clone.members = [_clone(member) for member in clone.members]
    if hasattr(clone, "_network"):
        clone._network = None
    if hasattr(clone, "_extractor"):
        clone._extractor = None
    return clone


def _save_estimator(estimator: Any, folder: Path, name: str) -> Path:
    """A fitted scikit-learn part as arrays (``.npz``: loads without scikit-learn, runs no code)
    where :func:`compact_estimator` converts it exactly, else as a pickle (the reason logged)."""
    try:
        compact = compact_estimator(estimator)
    except NotCompactable as exc:
        logger.info("%s: packaged as a pickle (%s)", name, exc)
        path = folder / f"{name}.pkl"
        with open(path, "wb") as out:
            pickle.dump(estimator, out, protocol=pickle.HIGHEST_PROTOCOL)
        return path
    path = folder / f"{name}.npz"
    compact.save(path)
    return path


def save_predictor(predictor: Predictor, folder: Path) -> dict[str, str]:
    """Write ``predictor``'s parts into ``folder``: ``{artifact name: file}`` for MLflow's
    ``artifacts``. A network that is not an ONNX export (Keras) stays in ``predictor.pkl``."""
    folder.mkdir(parents=True, exist_ok=True)
    skeleton = _clone(predictor)
    files: dict[str, str] = {}
    for slot in _slots(skeleton):
        value = slot.get()
        if value is None:
            continue
        if slot.network:
            if not isinstance(value, OnnxModel):
                logger.warning("%s: not an ONNX export, packaged with the predictor", slot.name)
                continue
            path = folder / f"{slot.name}.onnx"
            path.write_bytes(value.serialized)
        else:
            path = _save_estimator(value, folder, slot.name)
        files[slot.name] = str(path)
        slot.set(None)
    path = folder / f"{CLASS_NAMES}.json"
    path.write_text(json.dumps(list(predictor.class_names)))
    files[CLASS_NAMES] = str(path)
    path = folder / f"{PREDICTOR}.pkl"
    with open(path, "wb") as out:
        pickle.dump(skeleton, out, protocol=pickle.HIGHEST_PROTOCOL)
    files[PREDICTOR] = str(path)
    return files


def load_predictor(artifacts: Mapping[str, str]) -> Predictor:
    """The predictor :func:`save_predictor` wrote (``artifacts``: name -> local file, as
    MLflow's ``context.artifacts``)."""
    with open(artifacts[PREDICTOR], "rb") as source:
        predictor = pickle.load(source)  # noqa: S301 - the model's own artifact
    for slot in _slots(predictor):
        file = artifacts.get(slot.name)
        if file is None:
            continue
        if slot.network:
            slot.set(OnnxModel(Path(file).read_bytes(), source=Path(file).name))
        elif file.endswith(".npz"):
            slot.set(ArrayEstimator.load(Path(file)))
        else:
            with open(file, "rb") as source:
                slot.set(pickle.load(source))  # noqa: S301 - the model's own artifact
    names = json.loads(Path(artifacts[CLASS_NAMES]).read_text())
    if list(predictor.class_names) != names:
        raise ValueError(f"the packaged predictor predicts {predictor.class_names}, not {names}")
    return predictor


def save_package(predictor: Predictor, folder: Path, about: Mapping[str, Any]) -> None:
    """``predictor`` as a self-contained folder: :func:`save_predictor`'s files and
    :data:`MANIFEST` (each file's SHA-256, ``about``: what the predictor is). The folder is
    built beside ``folder`` and renamed over it: an interrupted save leaves the old one."""
    with atomic_folder(folder) as staging:
        files = save_predictor(predictor, staging)
        manifest = {
            **about,
            "class_names": list(predictor.class_names),
            "files": {
                name: {"file": Path(file).name, "sha256": file_sha256(file)}
                for name, file in files.items()
            },
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))


def read_manifest(folder: Path) -> dict[str, Any]:
    """The package's :data:`MANIFEST`; a PackageError when the folder holds none."""
    try:
        return dict(json.loads((Path(folder) / MANIFEST).read_text()))
    except FileNotFoundError:
        raise PackageError(
            f"{folder}: no packaged genre predictor; run `kedro run --pipeline=serving` "
            "(or `make run` for the demo)"
        ) from None
    except (OSError, ValueError) as exc:
        raise PackageError(
            f"{folder}/{MANIFEST}: unreadable ({exc}); rerun the serving pipeline"
        ) from exc


def load_package(folder: Path) -> Predictor:
    """The predictor :func:`save_package` wrote; a PackageError naming the damaged or missing
    file (each is checked against its recorded SHA-256) and the fix."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    artifacts = {}
    for name, entry in manifest["files"].items():
        path = folder / entry["file"]
        if not path.is_file() or file_sha256(path) != entry["sha256"]:
            raise PackageError(
                f"{path}: missing or damaged (its SHA-256 is not the one recorded in "
                f"{MANIFEST}); rerun `kedro run --pipeline=serving`"
            )
        artifacts[name] = str(path)
    return load_predictor(artifacts)


def needs_keras(predictor: Predictor) -> bool:
    """Whether a network of ``predictor`` is not an ONNX export (then the model needs
    TensorFlow)."""
    return any(
        slot.network and slot.get() is not None and not isinstance(slot.get(), OnnxModel)
        for slot in _slots(predictor)
    )


def predictor_requirements(predictor: Predictor) -> list[str]:
    """The pinned :data:`SERVE_REQUIREMENTS` (+ TensorFlow and Keras when a network is Keras)."""
    return pinned_requirements(
        *SERVE_REQUIREMENTS, *(KERAS_REQUIREMENTS if needs_keras(predictor) else ())
    )


def example_mp3(seconds: float = EXAMPLE_SECONDS, rate: int = 22050) -> bytes:
    """A short synthetic song as MP3 bytes (a few kB): two notes over a beat, seeded."""
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 330 * t)
    beat = (np.sin(2 * np.pi * 2 * t) > 0.9) * np.random.default_rng(0).normal(0, 0.1, t.size)
    out = io.BytesIO()
    sf.write(out, (tone + beat).astype(np.float32), rate, format="MP3")
    return out.getvalue()


def input_example(data: bytes | None = None) -> Any:
    """The model's input example: one row, ``audio`` = base64 of an MP3, ``name``."""
    import pandas as pd

    audio = base64.b64encode(data or example_mp3()).decode("ascii")
    return pd.DataFrame({"audio": [audio], "name": ["example.mp3"]})


def model_signature(class_names: list[str]) -> Any:
    """Input: the optional string columns ``audio`` (base64), ``name`` and ``path``; output:
    path, genre, one double per genre, error (what predictions_frame answers)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec("string", c, required=False) for c in ("audio", "name", "path")])
    outputs = Schema(
        [
            ColSpec("string", "path"),
            ColSpec("string", "genre", required=False),
            *(ColSpec("double", name, required=False) for name in class_names),
            ColSpec("string", "error"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def _package_source(folder: Path) -> str:
    """A copy of the ``music_genre`` package (no caches) for ``code_paths``."""
    import music_genre

    target = folder / "music_genre"
    shutil.copytree(
        Path(music_genre.__file__).parent,
        target,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return str(target)


def log_genre_predictor(model: Any, name: str = "model") -> str:
    """Log the served model ``model`` (a GenrePredictorModel holding its predictor) in the
    active run as the packaged pyfunc model this module describes; returns the flavour."""
    import mlflow

    predictor = model.predictor
    # the pickled python model holds the limits only: load_context reads the artifacts
    light = object.__new__(type(model))
    light.__dict__.update({**model.__dict__, "predictor": None})
    with tempfile.TemporaryDirectory(prefix="genre-predictor-") as folder:
        artifacts = save_predictor(predictor, Path(folder) / "artifacts")
        mlflow.pyfunc.log_model(
            name=name,
            python_model=light,
            artifacts=artifacts,
            code_paths=[_package_source(Path(folder))],
            signature=model_signature(list(predictor.class_names)),
            input_example=input_example(),
            pip_requirements=predictor_requirements(predictor),
        )
    return "pyfunc"
