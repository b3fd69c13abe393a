"""Schemas of reporting, serving and ``runtime`` (where the parallel work runs,
:mod:`music_genre.infra.parallel`)."""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)

# --- reporting, serving ---------------------------------------------------------------------
from .base import PositiveFloat, PositiveInt, Workers, _Schema


class ReportingParams(_Schema):
    """``reporting``: the summary report."""

    dataset_kind: Annotated[str, Field(min_length=1)]
    """Printed in the summary header so demo numbers are never mistaken for FMA results."""


def _absolute_path(value: str) -> str:
    if not os.path.isabs(value):
        raise ValueError("must be an absolute path (the server's working folder is no root)")
    return value


class ServingParams(_Schema):
    """``serving``: the model logged for serving and the prediction command's limits."""

    model: Literal["best", "handcrafted", "cnn", "transfer", "fusion"] = "best"
    """The model served: ``best`` (best held-out accuracy), ``handcrafted``, ``cnn``, ``transfer``
    or ``fusion``."""
    min_seconds: PositiveFloat
    """Shorter files get a per-file error; shorter than the window is padded as in training."""
    max_windows: PositiveInt
    """At most this many 29.7-s windows are averaged for a long file."""
    allowed_roots: list[Annotated[str, AfterValidator(_absolute_path)]] = []
    """Absolute folders whose regular files a served-model request may name in a ``path``
    column (symlinks resolved, and required to stay under one); empty: paths refused."""
    max_bytes: PositiveInt = 50 * 1024 * 1024
    """Largest file a served-model request may send (bytes); larger ones get a per-row error."""
    max_files: PositiveInt = 16
    """Most rows (files) in one served-model request; more: the request is refused (HTTP 400)."""
    max_seconds: PositiveFloat = 600.0
    """Longest decoded audio per file of a served-model request (s); longer: a per-row error."""


def _existing_folder(value: str | None) -> str | None:
    """A local folder must exist (a URL is checked when the run lists it)."""
    from music_genre.infra.location import is_url, local_path

    if value is not None and not is_url(value) and not os.path.isdir(local_path(value)):
        raise ValueError(
            "no such folder: set inference.folder to the folder (or fsspec URL) of your music, "
            'e.g. --params "inference.folder=/path/to/music"'
        )
    return value


class InferenceParams(_Schema):
    """``inference``: batch prediction over a music library (``kedro run --pipeline=inference``;
    ``genre-predict DIR --output FILE`` takes the same settings as options)."""

    folder: Annotated[str | None, AfterValidator(_existing_folder)] = None
    """The library: a folder (searched recursively for mp3, wav, flac, ogg, au) or an fsspec URL;
    required by the inference pipeline."""
    model: Literal["best", "handcrafted", "cnn", "transfer", "fusion"] = "best"
    """``best`` (best held-out accuracy, genre-predict's default), ``handcrafted``, ``cnn``,
    ``transfer`` or ``fusion``."""
    runtime: Literal["auto", "keras"] = "auto"
    """``auto``: the ONNX exports where valid; ``keras``: the Keras models (TensorFlow)."""
    run_id: Annotated[str, Field(min_length=1)] | None = None
    """An MLflow run id: use the genre predictor the serving pipeline logged in it."""
    min_seconds: PositiveFloat = 3.0
    """Shorter files get a per-file error."""
    max_windows: PositiveInt = 10
    """At most this many 29.7-s windows are averaged for a long file."""
    workers: Workers = None
    """Decoding and front-end processes: null or -1 = all cores."""
    chunk_size: PositiveInt = 32
    """Files per network call and per atomic rewrite of the table (an interruption loses at most
    one chunk)."""
    progress: bool = True
    """A progress bar (files) on stderr."""


# --- runtime: where the parallel work runs (music_genre.infra.parallel) ---------------------------
class RuntimeParams(_Schema):
    """``runtime``: where the parallel work runs (``music_genre.infra.parallel``), and GPU precision."""

    executor: Literal["local", "dask"] = "local"
    """``local``: process pools on this machine; ``dask``: a Dask cluster."""
    # dask: an existing scheduler (tcp://host:8786), or null for a LocalCluster of the run
    address: Annotated[str, Field(pattern=r"^(tcp|tls|ws|wss)://.+")] | None = None
    """Dask only: an existing scheduler (``tcp://host:8786``), or null for a LocalCluster the run
    starts and stops."""
    n_workers: PositiveInt | None = None  # LocalCluster only (null: one per core)
    """LocalCluster worker processes (null: one per core)."""
    threads_per_worker: PositiveInt = 1  # LocalCluster only
    """LocalCluster threads per worker process."""
    dashboard: str | None = ":8787"  # LocalCluster's dashboard address; null: none
    """LocalCluster dashboard address (the URL is logged); null: none."""
    mixed_precision: bool = False  # float16 compute on a GPU; refused (warning) on a CPU
    """Keras ``mixed_float16`` on a GPU; refused with a warning on a CPU."""

    @model_validator(mode="after")
    def _address_needs_dask(self) -> RuntimeParams:
        if self.address and self.executor != "dask":
            raise ValueError(
                f"address={self.address!r} is only used by executor=dask: "
                "set runtime.executor=dask or runtime.address=null"
            )
        return self
