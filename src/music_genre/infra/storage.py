"""Where the stores live: a local folder or any fsspec URL (``s3://``, ``gs://``, ``abfs://``,
``file://``), with the same atomic writes everywhere.

The three incremental stores (spectrograms, handcrafted feature rows, transfer features) read and
write through :class:`StoreFolder`, so a store can sit on storage every Dask worker and the driver
can reach. What "atomic" means per kind of storage:

- **local disk**: a temporary file beside the target, renamed over it (``os.replace``), so an
  interrupted run leaves no half-written file under a final name (:func:`music_genre.infra.atomic.atomic_path`);
- **object stores** (S3, GCS, Azure, memory): the file is assembled in memory and sent in one
  ``pipe_file`` request; an object store publishes an object only once it is complete, and an
  exception before the request sends nothing. Store files are small (one track, one batch).

A store is written by one process at a time (the driver, see docs/dask.md).
"""

from __future__ import annotations

import io
import json
import posixpath
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from music_genre.infra.atomic import atomic_file
from music_genre.infra.location import is_url, local_path, url_to_fs


def storage_options(
    credentials: Mapping[str, Any] | None, fs_args: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The catalog's ``credentials`` and ``fs_args`` (kedro-datasets' names) as fsspec options."""
    return {**(fs_args or {}), **(credentials or {})}


@dataclass(frozen=True)
class FileEntry:
    name: str
    size: int
    is_dir: bool


class StoreFolder:
    """A folder addressed by a local path or an fsspec URL. Small and picklable: worker
    processes that read stored files receive it (or :meth:`location` strings) unchanged."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.url = str(url).rstrip("/") or "/"
        self.options = dict(options or {})
        fs, root = url_to_fs(self.url, **self.options)
        self._fs = fs
        self.root = root.rstrip("/") or "/"
        self.is_local = isinstance(fs, LocalFileSystem)

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["options"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"StoreFolder({self.url!r})"

    @property
    def fs(self) -> Any:
        return self._fs

    def path(self, *parts: str) -> str:
        """The filesystem path of ``parts`` under this folder (no protocol)."""
        return posixpath.join(self.root, *parts) if parts else self.root

    def display(self, *parts: str) -> str:
        """``parts`` under this folder as the user wrote the folder (for messages)."""
        return posixpath.join(self.url, *parts) if parts else self.url

    def child(self, *parts: str) -> StoreFolder:
        return StoreFolder(self.display(*parts), self.options)

    # -- reading ---------------------------------------------------------------------------
    def is_dir(self, *parts: str) -> bool:
        return bool(self._fs.isdir(self.path(*parts)))

    def is_file(self, *parts: str) -> bool:
        return bool(self._fs.isfile(self.path(*parts)))

    def entries(self, *parts: str) -> list[FileEntry]:
        """What one folder holds (names, sizes), without descending; ``[]`` if it is absent."""
        try:
            listed = self._fs.ls(self.path(*parts), detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for info in listed:
            name = posixpath.basename(str(info["name"]).rstrip("/"))
            found.append(
                FileEntry(name, int(info.get("size") or 0), info.get("type") == "directory")
            )
        return found

    def open(self, *parts: str, mode: str = "rb") -> IO[Any]:
        if self.is_local:  # the plain file object: no fsspec buffering on the hot path
            return open(self.path(*parts), mode)  # noqa: SIM115 - the caller closes it
        return self._fs.open(self.path(*parts), mode)

    def read_text(self, *parts: str) -> str:
        with self.open(*parts, mode="rb") as handle:
            return handle.read().decode()

    def read_json(self, *parts: str) -> Any:
        """The parsed file, or ``None`` when it is absent or unreadable."""
        try:
            return json.loads(self.read_text(*parts))
        except (OSError, ValueError):
            return None

    # -- writing ---------------------------------------------------------------------------
    def makedirs(self, *parts: str) -> None:
        if self.is_local:
            self._fs.makedirs(self.path(*parts), exist_ok=True)
        # object stores have no folders: a key's prefix exists once a file is written under it

    @contextmanager
    def writing(self, *parts: str) -> Iterator[IO[bytes]]:
        """A binary file to fill; it appears under its name only complete (see the module)."""
        if self.is_local:
            with atomic_file(self.path(*parts)) as handle:
                yield handle
            return
        buffer = io.BytesIO()
        yield buffer
        self._fs.pipe_file(self.path(*parts), buffer.getvalue())

    def write_text(self, text: str, *parts: str) -> None:
        with self.writing(*parts) as handle:
            handle.write(text.encode())

    def remove(self, *parts: str) -> None:
        try:
            self._fs.rm_file(self.path(*parts))
        except FileNotFoundError:
            pass


def open_location(location: str, options: Mapping[str, Any] | None = None) -> IO[Any]:
    """Open one stored file by its path or URL (what a lazy loader keeps), read-only."""
    if not is_url(location):
        return open(local_path(location), "rb")  # noqa: SIM115 - the caller closes it
    return fsspec.open(location, "rb", **dict(options or {})).open()
