"""The library's prediction table (``inference`` pipeline) as stored: its columns, a chunk's
upsert, and the read and atomic rewrite of the ``.parquet`` or ``.csv`` file (a path or an fsspec
URL). :class:`~music_genre.datasets.LibraryPredictionsDataset` saves through it; the pipeline
(:mod:`music_genre.pipelines.inference.library`) builds the rows."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from music_genre.infra.location import is_url, local_path

logger = logging.getLogger(__name__)

# The stored table's columns around the genre columns: path, genre (top-1), <genres>, then these
META_COLUMNS = ("model", "error", "size", "version")


def table_columns(class_names: Sequence[str]) -> list[str]:
    return ["path", "genre", *class_names, *META_COLUMNS]


@dataclass
class LibraryChunk:
    """What the pipeline's generator node yields: rows to upsert into the stored table, or
    (``replace``) the rows that make the whole table (the first yield: the stored rows that
    stay valid, so rows of files gone or changed or of another model are dropped)."""

    rows: pd.DataFrame
    replace: bool = False


def merge_chunk(stored: pd.DataFrame | None, chunk: LibraryChunk | pd.DataFrame) -> pd.DataFrame:
    """The stored table with a chunk's rows put in (same path: the chunk's row wins)."""
    if isinstance(chunk, pd.DataFrame):
        chunk = LibraryChunk(chunk, replace=True)
    if chunk.replace or stored is None or list(stored.columns) != list(chunk.rows.columns):
        merged = chunk.rows
    else:
        kept = stored[~stored["path"].isin(chunk.rows["path"])]
        merged = pd.concat([kept, chunk.rows], ignore_index=True) if len(kept) else chunk.rows
    return merged.sort_values("path", kind="stable").reset_index(drop=True)


def normalized_table(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """A table read back (parquet or CSV) in the types :func:`plan` compares: a CSV has no
    empty string (NaN) and reads a local version (mtime in ns) as an integer."""
    if frame is None or not set(("path", *META_COLUMNS)) <= set(frame.columns):
        return None
    frame = frame.copy()
    frame["error"] = frame["error"].fillna("").astype(str)
    frame["model"] = frame["model"].fillna("").astype(str)
    frame["version"] = frame["version"].fillna("").astype(str)
    frame["size"] = frame["size"].fillna(-1).astype("int64")
    frame["path"] = frame["path"].astype(str)
    return frame


def read_table(location: str) -> pd.DataFrame | None:
    """The stored table (``.parquet`` or ``.csv``, a path or fsspec URL), or None when it is
    absent or cannot be read (logged: everything is then predicted again)."""
    import fsspec

    try:
        with fsspec.open(location, "rb") as handle:
            if str(location).lower().endswith(".csv"):
                frame = pd.read_csv(handle, dtype={"version": str, "error": str, "model": str})
            else:
                frame = pd.read_parquet(handle)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - a damaged table only costs recomputation
        logger.warning("%s cannot be read (%s): predicting every file again", location, exc)
        return None
    return normalized_table(frame)


def table_bytes(frame: pd.DataFrame, location: str) -> bytes:
    import io

    buffer = io.BytesIO()
    if str(location).lower().endswith(".csv"):
        buffer.write(frame.to_csv(index=False).encode())
    else:
        frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def write_table(location: str, frame: pd.DataFrame) -> None:
    """Replace the table in one step (local: a temporary file renamed over it; object stores:
    one upload): a reader never sees half a table."""
    data = table_bytes(frame, location)
    if is_url(location):
        from music_genre.infra.location import url_to_fs

        fs, key = url_to_fs(location)
        fs.pipe_file(key, data)
        return
    from music_genre.infra.atomic import atomic_path

    with atomic_path(local_path(location)) as tmp:
        tmp.write_bytes(data)
