"""FMA's precomputed handcrafted features (``fma_metadata/features.csv``), read only on demand.

Kedro loads every input of a node before running it, but ``features.csv`` (106,574 tracks x 518
columns, ~950 MB) is needed only when ``handcrafted.source`` is ``fma_csv``, and it does not exist
at all for the demo data or a folder collection. So, like ``PartitionedDataset`` handing over
partition loaders, this dataset loads as a lazy handle: the node calls ``read()`` only when that
source is selected, and only then is a missing file an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from music_genre.audio.features import N_FEATURES, feature_columns
from music_genre.infra.location import is_file, local_path

_CHUNK_ROWS = 5000  # read the big file in chunks, keeping only the tracks asked for


@dataclass(frozen=True)
class FmaFeaturesFile:
    """A lazy handle on one ``features.csv``."""

    path: str

    def exists(self) -> bool:
        return _is_file(self.path)

    def read(self, track_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """The features of ``track_ids`` (all tracks when None) as float32, indexed by the
        6-digit track id, columns exactly ``feature_columns()``. Ids absent from the file are
        simply absent from the result; the caller reports them."""
        path = local_path(self.path)  # a local path or an fsspec URL (pandas reads both)
        try:
            present = is_file(path)
        except OSError as exc:
            raise DatasetError(f"Cannot read FMA features {path}: {exc}") from exc
        if not present:
            raise DatasetError(
                f"FMA features not found: {path} does not exist. Download fma_metadata.zip "
                "(`make fma-small`) or point to your copy with "
                '--params "ingestion.fma_root=<dir>"; without FMA\'s metadata, compute the '
                'features from audio with --params "handcrafted.source=extract".'
            )
        ids = None if track_ids is None else [str(t) for t in track_ids]
        if ids is not None and not all(t.isdigit() for t in ids):
            odd = [t for t in ids if not t.isdigit()][:3]
            raise DatasetError(
                f"FMA's {path} is indexed by numeric FMA track ids, but got ids such as {odd}: "
                'for a collection that is not FMA use --params "handcrafted.source=extract".'
            )
        wanted = None if ids is None else {f"{int(t):06d}" for t in ids}
        try:
            chunks = []
            reader = pd.read_csv(path, index_col=0, header=[0, 1, 2], chunksize=_CHUNK_ROWS)
            for chunk in reader:
                chunk.index = [f"{int(t):06d}" for t in chunk.index]
                chunks.append(chunk if wanted is None else chunk[chunk.index.isin(wanted)])
        except (ValueError, TypeError, pd.errors.ParserError) as exc:
            raise DatasetError(
                f"Cannot read {path} as FMA features.csv (three header rows feature/statistics/"
                f"number, index track_id): {exc}"
            ) from exc
        frame = pd.concat(chunks) if chunks else pd.DataFrame(columns=feature_columns())
        expected = feature_columns()
        if frame.shape[1] != N_FEATURES or not frame.columns.equals(expected):
            raise DatasetError(
                f"{path}: columns differ from FMA's features.csv layout ({frame.shape[1]} "
                f"columns, expected the {N_FEATURES} (feature, statistics, number) columns of "
                "music_genre.audio.features.feature_columns()); is it the original FMA file?"
            )
        frame.columns = expected
        frame.index.name = "track_id"
        return frame.astype(np.float32)


class FmaFeaturesDataset(AbstractDataset[None, FmaFeaturesFile]):
    """Read-only; ``load()`` returns a ``FmaFeaturesFile`` without touching the file."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = str(filepath)
        self.metadata = metadata

    def load(self) -> FmaFeaturesFile:
        return FmaFeaturesFile(self._filepath)

    def save(self, data: None) -> None:
        raise DatasetError("FmaFeaturesDataset is read-only: it is FMA's own features.csv.")

    def _exists(self) -> bool:
        return _is_file(self._filepath)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath}


def _is_file(location: str) -> bool:
    try:
        return is_file(location)
    except OSError:  # unreachable storage or a missing filesystem package: not available
        return False
