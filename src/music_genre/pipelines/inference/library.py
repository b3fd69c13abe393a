# Over 400 lines: one job, a library run: its files, the model, the plan, the chunks, resuming (per-file work: front_end.py).
"""Batch prediction over a music library: every audio file below a folder (or an fsspec URL),
one table row per file, resumable, with decoding and the front end in worker processes.

The ``inference`` pipeline and ``genre-predict DIR --output FILE`` both call these functions,
with the predictors of :mod:`music_genre.serving` (what ``genre-predict f`` runs):

- :func:`list_library`: the audio files (mp3, wav, flac, ogg, au; any case) below the folder,
  each with its size and version (local: ``st_mtime_ns``; URL: ETag or the first version key of
  :func:`music_genre.infra.location.version_of`). Anything that is not a regular file becomes a
  row with its reason; nothing is decoded yet.
- :func:`plan`: the stored rows that stay valid (same path, size, version and model, see
  :func:`model_id`) and the files that must be predicted.
- :func:`predict_chunks`: the files to predict, through :func:`music_genre.infra.parallel.run_tasks`
  (decode + spectrogram / features / musicnn front end per file in a worker, which also checks
  the file as ``genre-predict`` does), the network run here on the driver once per chunk of
  ``chunk_size`` files in path order. Chunks are made from the file order, never from which
  worker finished first, so 1 or N workers give the same table.
- :func:`predict_library`: the reused rows first (:class:`LibraryChunk` with ``replace``), then
  one chunk of new rows at a time; :func:`merge_chunk` upserts a chunk into the stored table,
  which :func:`write_table` replaces atomically: an interruption loses at most the chunk in
  flight, and the next run predicts only what is missing.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import pickle
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from music_genre.audio.decode import AUDIO_EXTENSIONS
from music_genre.contracts import MODEL_KINDS
from music_genre.datasets.library_table import (
    LibraryChunk,
    merge_chunk,
    normalized_table,
    read_table,
    table_columns,
    write_table,
)
from music_genre.errors import SetupError
from music_genre.infra.location import (
    absolute,
    file_stamp,
    is_dir,
    is_url,
    join,
    list_files,
)
from music_genre.serving import (
    CnnPredictor,
    FusionPredictor,
    HandcraftedPredictor,
    PredictionError,
    Predictor,
    TransferPredictor,
    best_model_kind,
    build_predictor,
)

from .front_end import FileInputs, file_inputs, prepare_front_end, window_probabilities

logger = logging.getLogger(__name__)


class LibraryError(SetupError, ValueError):
    """The library or the model cannot be used as configured; the message names the setting
    and the fix (``kedro run`` shows it without a traceback)."""


# --- the files ----------------------------------------------------------------------------
@dataclass(frozen=True)
class LibraryFile:
    """One audio file of the library: its location, size and version (what tells an unchanged
    file), or why it cannot be read at all (not a regular file, vanished)."""

    path: str
    size: int = -1
    version: str = ""
    error: str = ""


def is_audio_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def _local_file(path: str) -> LibraryFile:
    try:
        info = os.stat(path)  # follows a symlink: its target must be a regular file
    except FileNotFoundError:
        kind = "a broken symbolic link" if os.path.islink(path) else "gone"
        return LibraryFile(path, error=f"{path}: not a regular file ({kind})")
    except OSError as exc:
        return LibraryFile(path, error=f"{path}: cannot read it ({exc})")
    if not stat.S_ISREG(info.st_mode):
        kind = {
            stat.S_IFIFO: "a FIFO",
            stat.S_IFSOCK: "a socket",
            stat.S_IFCHR: "a character device",
            stat.S_IFBLK: "a block device",
            stat.S_IFDIR: "a directory",
        }.get(stat.S_IFMT(info.st_mode), "not a file")
        return LibraryFile(path, error=f"{path}: not a regular file ({kind})")
    return LibraryFile(path, size=int(info.st_size), version=str(info.st_mtime_ns))


def list_library(folder: str | None, setting: str = "inference.folder") -> list[LibraryFile]:
    """Every audio file below ``folder`` (recursive, sorted by path), with its stamp.
    ``setting`` names the folder's parameter or argument in the message of a
    :class:`LibraryError` (no folder given, or none there)."""
    parameter = "." in setting  # a parameter (inference.folder), else a command's argument
    fix = (
        f"set {setting} to the folder (or fsspec URL) of your music, e.g. kedro run "
        f'--pipeline=inference --params "{setting}=/path/to/music"'
        if parameter
        else f"pass the folder (or fsspec URL) of your music as {setting}"
    )
    named = f"{setting}={folder!r}" if parameter else str(folder)
    if not folder:
        raise LibraryError(f"{setting} is not set: {fix}")
    try:
        found = is_dir(folder)
    except OSError as exc:
        raise LibraryError(f"{named}: cannot list it ({exc}); {fix}") from None
    if not found:
        raise LibraryError(f"{named}: no such folder; {fix}")
    root = absolute(folder)
    names = [name for name in list_files(root) if is_audio_name(name)]
    files = []
    for name in names:
        location = join(root, name)
        if is_url(location):
            try:
                size, version = file_stamp(location)
                files.append(LibraryFile(location, int(size), str(version)))
            except OSError as exc:
                files.append(LibraryFile(location, error=str(exc)))
        else:
            files.append(_local_file(location))
    return sorted(files, key=lambda f: f.path)


# --- the model ----------------------------------------------------------------------------
def load_predictor(
    model: str,
    load: Callable[[str], Any],
    params: Mapping[str, Any],
    runtime: str = "auto",
    run_id: str | None = None,
    tracking_uri: str | None = None,
) -> tuple[Predictor, str]:
    """The predictor ``genre-predict --model M [--runtime R] [--run-id ID]`` would use, and its
    label: ``model`` best (the project's selection: held-out accuracy), handcrafted, cnn,
    transfer or fusion, read through ``load(name)`` (a catalog's load); ``run_id``: the genre
    predictor logged in that MLflow run instead."""
    if run_id:
        import mlflow

        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        try:
            served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").unwrap_python_model()
        except Exception as exc:
            raise LibraryError(
                f"run id {run_id}: cannot load its genre predictor ({exc}); give the id of a "
                "run the serving pipeline logged (make mlflow-ui lists them)"
            ) from exc
        return served.predictor, f"mlflow run {run_id}: {served.predictor.label}"
    kind = model
    try:
        if kind == "best":
            kind = best_model_kind({k: load(f"{k}_results") for k in MODEL_KINDS})
        predictor = build_predictor(kind, load, params, exported=runtime == "auto")
    except PredictionError as exc:
        raise LibraryError(str(exc)) from None
    except Exception as exc:
        raise LibraryError(
            f"cannot load the trained {kind} model ({exc}); run `kedro run "
            f"--pipelines={kind}` (or `make run` for the demo) first"
        ) from exc
    return predictor, predictor.label


def _feed(digest: Any, value: Any) -> None:
    from music_genre.models.inference import OnnxModel

    if isinstance(value, OnnxModel):
        digest.update(value.serialized)
    elif hasattr(value, "get_weights") and hasattr(value, "to_json"):  # a Keras model
        digest.update(value.to_json().encode())
        for weights in value.get_weights():
            digest.update(np.ascontiguousarray(weights).tobytes())
    else:
        digest.update(pickle.dumps(value, protocol=5))


def model_digest(predictor: Predictor) -> str:
    """sha256 of what makes the predictor's numbers: its networks (ONNX bytes, or a Keras
    model's architecture and weights), scaler, classifier bundle and preprocessing settings."""
    digest = hashlib.sha256(type(predictor).__name__.encode())
    if isinstance(predictor, FusionPredictor):
        _feed(digest, dict(predictor.bundle))
        for member in predictor.members:
            digest.update(model_digest(member).encode())
    elif isinstance(predictor, TransferPredictor):
        prepare_front_end(predictor)  # drops a backbone export that does not belong to it
        _feed(digest, dict(predictor.bundle))
        _feed(digest, dict(predictor.spectrogram_settings))
        if predictor.backbone is not None:
            _feed(digest, predictor.backbone)
    elif isinstance(predictor, CnnPredictor):
        for value in (predictor.model, predictor.class_names, dict(predictor.spectrogram_settings)):
            _feed(digest, value)
    elif isinstance(predictor, HandcraftedPredictor):
        for value in (
            predictor.model,
            predictor.scaler,
            predictor.class_names,
            dict(predictor.feature_settings),
            dict(predictor.audio or {}),
        ):
            _feed(digest, value)
    else:
        _feed(digest, predictor)
    return digest.hexdigest()


def model_id(predictor: Predictor, label: str, min_seconds: float, max_windows: int) -> str:
    """The ``model`` column: the predictor's label and a digest of it and of the settings that
    change its numbers, e.g. ``cnn (tuned_cnn) sha256:0123456789ab``. A stored row is reused
    only when its model column is this."""
    digest = hashlib.sha256(model_digest(predictor).encode())
    digest.update(f"min_seconds={min_seconds:g} max_windows={max_windows}".encode())
    return f"{label} sha256:{digest.hexdigest()[:12]}"


# --- the table (its storage: music_genre.datasets.library_table) ---------------------------
def rows_frame(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> pd.DataFrame:
    """Rows in the table's column order and types (probabilities float, NaN for an error)."""
    frame = pd.DataFrame(list(rows), columns=table_columns(class_names))
    types: dict[str, Any] = {name: "float64" for name in class_names}
    types.update(path=str, model=str, error=str, version=str, size="int64")
    frame = frame.astype(types)
    frame["genre"] = frame["genre"].astype(object).where(frame["genre"].notna(), None)
    return frame.sort_values("path", kind="stable").reset_index(drop=True)


def _row(
    file: LibraryFile,
    model: str,
    class_names: Sequence[str],
    probabilities: np.ndarray | None = None,
    error: str = "",
) -> dict[str, Any]:
    row: dict[str, Any] = {"path": file.path, "genre": None}
    row.update({name: math.nan for name in class_names})
    if probabilities is not None:
        row.update({n: float(p) for n, p in zip(class_names, probabilities, strict=True)})
        row["genre"] = class_names[int(np.argmax(probabilities))]
    row.update(model=model, error=error, size=file.size, version=file.version)
    return row


def csv_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the CSV next to the parquet shows it (the same columns and rows)."""
    return table


# --- planning and predicting --------------------------------------------------------------
@dataclass
class Plan:
    reused: pd.DataFrame  # stored rows still valid, and rows of files that cannot be read
    todo: list[LibraryFile] = field(default_factory=list)


def plan(
    files: Sequence[LibraryFile],
    stored: pd.DataFrame | None,
    model: str,
    class_names: Sequence[str],
) -> Plan:
    """Which stored rows stay (same path, size, version, model) and which files to predict."""
    stored = normalized_table(stored)
    valid: dict[str, dict[str, Any]] = {}
    if stored is not None and list(stored.columns) == table_columns(class_names):
        for row in stored.to_dict("records"):
            valid[row["path"]] = row
    reused, todo = [], []
    for file in files:
        if file.error:  # not a regular file: a row, nothing to decode
            reused.append(_row(file, model, class_names, error=file.error))
            continue
        row = valid.get(file.path)
        if (
            row is not None
            and row["model"] == model
            and int(row["size"]) == file.size
            and str(row["version"]) == file.version
        ):
            reused.append(row)
        else:
            todo.append(file)
    return Plan(rows_frame(reused, class_names), todo)


def predict_chunks(
    predictor: Predictor,
    files: Sequence[LibraryFile],
    model: str,
    workers: int | None = None,
    min_seconds: float = 3.0,
    max_windows: int = 10,
    chunk_size: int = 32,
    progress: bool = True,
) -> Iterator[pd.DataFrame]:
    """Rows for ``files``, one frame per chunk of ``chunk_size`` files (in the given order):
    decoding and front end through :func:`music_genre.infra.parallel.run_tasks`, the network here
    once per chunk. A progress bar (files) goes to stderr."""
    from tqdm import tqdm

    from music_genre.infra.parallel import TaskFailure, run_tasks

    if not files:
        return
    class_names = list(predictor.class_names)
    front = prepare_front_end(predictor)
    window_s = predictor.window_s()
    tasks = (
        (str(i), (front, window_s, f.path, min_seconds, max_windows)) for i, f in enumerate(files)
    )
    done: dict[int, FileInputs] = {}
    start = 0
    bar = tqdm(total=len(files), unit="file", file=sys.stderr, disable=not progress)
    try:
        window = max(2 * (workers or os.cpu_count() or 1), chunk_size)
        for key, result in run_tasks(file_inputs, tasks, workers, window=window):
            if isinstance(result, TaskFailure):
                result = FileInputs(error=f"{files[int(key)].path}: {result.reason}")
            done[int(key)] = result
            while start < len(files):
                stop = min(start + chunk_size, len(files))
                if any(i not in done for i in range(start, stop)):
                    break
                yield _chunk_rows(predictor, files, done, start, stop, model, class_names)
                for i in range(start, stop):
                    del done[i]
                bar.update(stop - start)
                start = stop
    finally:
        bar.close()


def _chunk_rows(
    predictor: Predictor,
    files: Sequence[LibraryFile],
    done: Mapping[int, FileInputs],
    start: int,
    stop: int,
    model: str,
    class_names: Sequence[str],
) -> pd.DataFrame:
    good = [i for i in range(start, stop) if not done[i].error]
    probabilities: dict[int, np.ndarray] = {}
    failed = ""
    try:
        rows = window_probabilities(
            predictor, [done[i].inputs for i in good], [done[i].windows for i in good]
        )
        probabilities = {i: r.mean(axis=0) for i, r in zip(good, rows, strict=True)}
    except Exception as exc:  # noqa: BLE001 - the chunk's files get the reason, the run goes on
        logger.warning("the network failed on files %d-%d: %s", start, stop - 1, exc)
        failed = f"{type(exc).__name__}: {exc}"
    out = []
    for i in range(start, stop):
        file, item = files[i], done[i]
        if item.error:
            out.append(_row(file, model, class_names, error=item.error))
        elif i in probabilities:
            out.append(_row(file, model, class_names, probabilities[i]))
        else:
            out.append(_row(file, model, class_names, error=f"{file.path}: {failed}"))
    return rows_frame(out, class_names)


@dataclass
class LibraryRun:
    """What :func:`predict_library` did (logged, and printed by the command)."""

    files: int = 0
    reused: int = 0
    predicted: int = 0
    errors: int = 0


def predict_library(
    predictor: Predictor,
    label: str,
    folder: str | None,
    stored: pd.DataFrame | None,
    workers: int | None = None,
    min_seconds: float = 3.0,
    max_windows: int = 10,
    chunk_size: int = 32,
    progress: bool = True,
    setting: str = "inference.folder",
    summary: LibraryRun | None = None,
) -> Iterator[LibraryChunk]:
    """The whole batch: the reused rows (``replace``: they make the table), then each chunk of
    new rows. Apply them in order with :func:`merge_chunk`."""
    summary = summary if summary is not None else LibraryRun()
    files = list_library(folder, setting)
    model = model_id(predictor, label, min_seconds, max_windows)
    class_names = list(predictor.class_names)
    planned = plan(files, stored, model, class_names)
    summary.files, summary.reused = len(files), len(planned.reused)
    logger.info(
        "%d audio file(s) below %s: %d unchanged (or unreadable) row(s) kept, %d to predict "
        "with %s",
        len(files),
        folder,
        len(planned.reused),
        len(planned.todo),
        model,
    )
    yield LibraryChunk(planned.reused, replace=True)
    for rows in predict_chunks(
        predictor,
        planned.todo,
        model,
        workers,
        min_seconds,
        max_windows,
        chunk_size,
        progress,
    ):
        summary.predicted += len(rows)
        summary.errors += int((rows["error"] != "").sum())
        yield LibraryChunk(rows)


def run_library(
    predictor: Predictor,
    label: str,
    folder: str | None,
    output: str,
    chunks: Iterable[LibraryChunk] | None = None,
    **options: Any,
) -> tuple[pd.DataFrame, LibraryRun]:
    """:func:`predict_library` into the table file ``output`` (``.parquet`` or ``.csv``),
    rewritten atomically after every chunk: what ``genre-predict DIR --output FILE`` runs."""
    summary = LibraryRun()
    table = read_table(output)
    for chunk in chunks or predict_library(
        predictor, label, folder, table, summary=summary, **options
    ):
        table = merge_chunk(table, chunk)
        write_table(output, table)
    assert table is not None
    return table, summary
