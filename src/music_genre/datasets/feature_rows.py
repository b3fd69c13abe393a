"""A folder of per-track feature rows: the incremental store behind feature extraction.

Extraction over thousands of tracks takes long, so each finished track is written at once as its
own small file (``<folder>/<track_id>.npz``, atomically) and a re-run skips what is there.
Saving adds or replaces rows and never deletes others; loading returns every stored row, and
leaves out (with a warning naming the file) a row that cannot be read, so it is extracted again.

Each row keeps its ``provenance`` (extraction settings and source file), so a consumer can reuse
a row only when it was computed the same way from the same file. A track whose extraction failed
is stored too, with empty values and its ``error``, so the failure reaches the report.

The store pattern of every incremental store (docs/dask.md, "One store pattern"): the read-only
:class:`FeatureRowsIndexDataset` on the same folder says what is stored (track -> provenance of
its successful row), the extraction node computes the rest through
:func:`music_genre.infra.parallel.run_tasks` and yields batches, and ``save`` writes each row
atomically. ``path`` may be an fsspec URL (:mod:`music_genre.infra.storage`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
from kedro.io import DatasetError

from music_genre.infra.storage import StoreFolder

from .store_base import StoreFolderDataset, StoreIndexDataset

logger = logging.getLogger(__name__)

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SUFFIX = ".npz"


@dataclass(frozen=True)
class FeatureRow:
    """One track's feature vector (empty when ``error`` says why it could not be computed) and
    what produced it."""

    values: np.ndarray  # 1-D float32
    provenance: str
    error: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error)


def _row_files(folder: StoreFolder) -> list[str]:
    return sorted(
        e.name
        for e in folder.entries()
        if e.name.endswith(_SUFFIX) and not e.name.startswith(".") and not e.is_dir
    )


def _read_row(folder: StoreFolder, name: str, with_values: bool = True) -> FeatureRow | None:
    """The stored row, or ``None`` (logged with the file's name) when it cannot be read, so the
    track is extracted again. ``with_values=False`` reads only provenance and error."""
    try:
        with folder.open(name) as handle, np.load(handle, allow_pickle=False) as stored:
            return FeatureRow(
                values=stored["values"] if with_values else np.empty(0, np.float32),
                provenance=str(stored["provenance"]),
                error=str(stored["error"]),
            )
    except Exception as exc:  # noqa: BLE001 - a damaged row is recomputed, and said so
        logger.warning(
            "Damaged feature row %s (%s: %s); that track will be extracted again",
            folder.display(name),
            type(exc).__name__,
            exc,
        )
        return None


class FeatureRowsDataset(StoreFolderDataset):
    """``dict[track_id, FeatureRow]`` stored as one ``.npz`` file per track in ``path``."""

    def load(self) -> dict[str, FeatureRow]:
        rows = {}
        for name in _row_files(self._folder):  # an absent folder: nothing extracted yet
            row = _read_row(self._folder, name)
            if row is not None:
                rows[name[: -len(_SUFFIX)]] = row
        return rows

    def save(self, data: dict[str, FeatureRow]) -> None:
        self._folder.makedirs()
        for key, row in data.items():
            if not _SAFE_KEY.match(key):
                raise DatasetError(
                    f"Track id {key!r} cannot name a file in {self._folder.display()} (letters, "
                    "digits, '.', '_' and '-' only)."
                )
            with self._folder.writing(f"{key}{_SUFFIX}") as handle:
                np.savez(
                    handle,
                    values=np.asarray(row.values, dtype=np.float32),
                    provenance=np.asarray(row.provenance),
                    error=np.asarray(row.error),
                )

    def _exists(self) -> bool:
        return bool(_row_files(self._folder))


class FeatureRowsIndexDataset(StoreIndexDataset):
    """Read-only view of what a feature-row store holds, for the node that skips finished
    tracks: ``{track_id: provenance}`` of every successfully stored row (failed rows are left
    out, so they are retried). Reads each file's small provenance entry, not its values."""

    writer = "FeatureRowsDataset"

    def load(self) -> dict[str, str]:
        stored = {}
        for name in _row_files(self._folder):
            row = _read_row(self._folder, name, with_values=False)
            if row is not None and not row.failed:
                stored[name[: -len(_SUFFIX)]] = row.provenance
        return stored
