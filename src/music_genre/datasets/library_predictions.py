"""The library's prediction table (``inference`` pipeline), saved one chunk at a time.

``save`` takes what the inference node yields: a
:class:`~music_genre.datasets.library_table.LibraryChunk` is upserted into the stored table
(``replace``: it becomes the table), and the table is rewritten atomically (a temporary file
renamed over it, or one upload to an object store): an interrupted run loses at most the chunk
in flight. A plain DataFrame replaces the table. ``load`` returns the table, or ``None`` when it
is absent or unreadable (then every file is predicted again).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from kedro.io import AbstractDataset

from .library_table import merge_chunk, read_table, write_table


class LibraryPredictionsDataset(AbstractDataset[pd.DataFrame, Any]):
    may_be_absent = True  # the first run starts without it (hooks.MissingInputsHook)

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = str(filepath)
        self.metadata = metadata
        self._table: pd.DataFrame | None = None  # what this run wrote last (no re-read)

    def load(self) -> pd.DataFrame | None:  # type: ignore[override]
        return read_table(self._filepath)

    def save(self, data: Any) -> None:
        replaces = isinstance(data, pd.DataFrame) or data.replace
        stored = None if replaces else self._table
        if stored is None and not replaces:
            stored = read_table(self._filepath)
        self._table = merge_chunk(stored, data)
        write_table(self._filepath, self._table)

    def _exists(self) -> bool:
        import fsspec

        fs, path = fsspec.core.url_to_fs(self._filepath)
        return bool(fs.exists(path))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath}
