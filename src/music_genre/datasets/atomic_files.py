"""Kedro-datasets' file datasets, saved atomically.

The stock datasets open their final path and write into it, so a run interrupted mid-save
leaves a truncated table or figure that the next run (or ``kedro viz``) fails to read. These
subclasses only change where ``save`` writes: a temporary file beside the target, renamed over
it when complete (``music_genre.infra.atomic.atomic_path``). Loading, previews (kedro-viz) and all
options are the stock ones. Remote filesystems (``s3://`` ...) are saved as stock: their
uploads already replace the object in one step.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset, ParquetDataset
from kedro_datasets.pickle import PickleDataset
from kedro_datasets.text import TextDataset

from music_genre.infra.atomic import atomic_path


class AtomicSaveMixin:
    """Route one ``save`` through a temporary file that replaces the target when complete."""

    def _saves_one_local_file(self, data: Any) -> bool:
        return getattr(self, "_protocol", "file") == "file"

    def save(self, data: Any) -> None:
        if not self._saves_one_local_file(data):
            super().save(data)  # type: ignore[misc]
            return
        target = self._get_save_path()  # type: ignore[has-type]
        with atomic_path(target) as tmp:
            # The stock save asks _get_save_path() where to write: answer the temporary file.
            self._get_save_path = lambda: PurePosixPath(tmp)  # type: ignore[method-assign]
            try:
                super().save(data)  # type: ignore[misc]
            finally:
                del self._get_save_path
        self._invalidate_cache()  # type: ignore[attr-defined]


class AtomicCSVDataset(AtomicSaveMixin, CSVDataset):
    """``pandas.CSVDataset``, saved atomically."""


class AtomicParquetDataset(AtomicSaveMixin, ParquetDataset):
    """``pandas.ParquetDataset`` (single file), saved atomically."""


class AtomicJSONDataset(AtomicSaveMixin, JSONDataset):
    """``json.JSONDataset``, saved atomically."""


class AtomicPickleDataset(AtomicSaveMixin, PickleDataset):
    """``pickle.PickleDataset``, saved atomically."""


class AtomicTextDataset(AtomicSaveMixin, TextDataset):
    """``text.TextDataset``, saved atomically."""
