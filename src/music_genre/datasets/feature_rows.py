"""A folder of per-track feature rows: the incremental store behind feature extraction.

Extraction over thousands of tracks takes long, so each finished track is written at once as its
own small file (``<folder>/<track_id>.npz``, atomically) and a re-run skips what is there.
Saving adds or replaces rows and never deletes others; loading returns every stored row, and
leaves out (with a warning naming the file) a row that cannot be read, so it is extracted again.

Each row keeps its ``provenance`` (extraction settings and source file), so a consumer can reuse
a row only when it was computed the same way from the same file. A track whose extraction failed
is stored too, with empty values and its ``error``, so the failure reaches the report.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError

from music_genre.atomic import atomic_path

logger = logging.getLogger(__name__)

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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


class FeatureRowsDataset(AbstractDataset[dict[str, FeatureRow], dict[str, FeatureRow]]):
    """``dict[track_id, FeatureRow]`` stored as one ``.npz`` file per track in ``path``."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> dict[str, FeatureRow]:
        if not self._path.is_dir():
            return {}  # nothing extracted yet: an empty store, not an error
        rows = {}
        for file in sorted(self._path.glob("*.npz")):
            try:
                with np.load(file, allow_pickle=False) as stored:
                    rows[file.stem] = FeatureRow(
                        values=stored["values"],
                        provenance=str(stored["provenance"]),
                        error=str(stored["error"]),
                    )
            except Exception as exc:  # noqa: BLE001 - a damaged row is recomputed, and said so
                logger.warning(
                    "Damaged feature row %s (%s: %s); that track will be extracted again",
                    file,
                    type(exc).__name__,
                    exc,
                )
        return rows

    def save(self, data: dict[str, FeatureRow]) -> None:
        self._path.mkdir(parents=True, exist_ok=True)
        for key, row in data.items():
            if not _SAFE_KEY.match(key):
                raise DatasetError(
                    f"Track id {key!r} cannot name a file in {self._path} (letters, digits, "
                    "'.', '_' and '-' only)."
                )
            with atomic_path(self._path / f"{key}.npz") as tmp, open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    values=np.asarray(row.values, dtype=np.float32),
                    provenance=np.asarray(row.provenance),
                    error=np.asarray(row.error),
                )

    def _exists(self) -> bool:
        return self._path.is_dir() and any(self._path.glob("*.npz"))

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
