"""What the three incremental stores' datasets share: a folder addressed by a path or an fsspec
URL, and a read-only *index* entry on the same folder that says what is stored (the project's
one store pattern, docs/dask.md)."""

from __future__ import annotations

from typing import Any, ClassVar

from kedro.io import AbstractDataset, DatasetError

from music_genre.infra.storage import StoreFolder, storage_options


class StoreFolderDataset(AbstractDataset):
    """A dataset over one store folder; ``credentials`` and ``fs_args`` as in kedro-datasets."""

    def __init__(
        self,
        path: str,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._folder = StoreFolder(path, storage_options(credentials, fs_args))
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"path": self._folder.display()}


class StoreIndexDataset(StoreFolderDataset):
    """Read-only: lists what the store on the same folder holds, for the node that computes only
    what is missing. Subclasses say what ``load`` lists and which dataset writes the store."""

    writer: ClassVar[str]

    def save(self, data: None) -> None:
        raise DatasetError(
            f"{type(self).__name__} is read-only: it lists what {self._folder.display()} holds; "
            f"save to the {self.writer} on the same folder."
        )

    def _exists(self) -> bool:
        return self._folder.is_dir()
