"""The raw audio source: the FMA download (metadata + mp3 tree) or a folder-per-genre collection.

Loading reads only metadata and lists files; the audio itself stays behind lazy ``AudioFile``
handles that nodes decode in parallel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from music_genre.audio import AudioFile

FMA_SUBSETS = ("small", "medium", "large")
SOURCES = ("fma", "folder")


@dataclass
class AudioCollection:
    """Metadata and lazy audio handles of one source.

    ``tracks``: for ``fma`` the raw ``tracks.csv`` (two header rows); for ``folder`` one row per
    file with columns ``relpath`` and ``genre``. ``files``: relative path -> ``AudioFile``.
    """

    source: str
    root: str
    subset: str | None
    tracks: pd.DataFrame
    genres: pd.DataFrame | None
    files: dict[str, AudioFile] = field(default_factory=dict)
    # folder collections: a published split (columns path, split) and per-file metadata
    # (columns path, <group column>), paths relative to ``root``; None when not configured
    split_table: pd.DataFrame | None = None
    track_metadata: pd.DataFrame | None = None


class AudioCollectionDataset(AbstractDataset[None, AudioCollection]):
    """Read-only dataset over FMA (``source: fma``) or a ``<folder>/<genre>/<file>`` tree."""

    def __init__(
        self,
        source: str = "fma",
        fma_root: str = "data/01_raw",
        subset: str = "small",
        folder: str | None = None,
        split_file: str | None = None,
        metadata_file: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._source = source
        self._split_file = Path(split_file) if split_file else None
        self._metadata_file = Path(metadata_file) if metadata_file else None
        self._fma_root = Path(fma_root) if fma_root else None
        self._subset = subset
        self._folder = Path(folder) if folder else None
        self.metadata = metadata

    def load(self) -> AudioCollection:
        if self._source == "fma":
            return self._load_fma()
        if self._source == "folder":
            return self._load_folder()
        raise DatasetError(
            f"Unknown ingestion.source {self._source!r}: use one of {SOURCES}, e.g. "
            '--params "ingestion.source=folder,ingestion.folder=<root>".'
        )

    def _load_fma(self) -> AudioCollection:
        if self._subset not in FMA_SUBSETS:
            raise DatasetError(
                f"Unknown FMA subset ingestion.subset={self._subset!r}: use one of {FMA_SUBSETS}."
            )
        root = self._fma_root
        tracks_csv = root / "fma_metadata" / "tracks.csv"
        if not tracks_csv.is_file():
            raise DatasetError(
                f"FMA metadata not found: {tracks_csv} does not exist. Download FMA with "
                "`make fma-small`, or point to your copy with "
                '--params "ingestion.fma_root=<dir>" (a folder holding fma_metadata/ and '
                "fma_small/). For the offline demo: `make demo-data`, then `kedro run --env demo`."
            )
        audio_dir = root / f"fma_{self._subset}"
        if not audio_dir.is_dir():
            raise DatasetError(
                f"FMA audio folder not found: {audio_dir}. Unzip fma_{self._subset}.zip into "
                f"{root} (`make fma-small` does it for the small subset) or set "
                '--params "ingestion.fma_root=<dir>".'
            )
        try:
            tracks = pd.read_csv(tracks_csv, index_col=0, header=[0, 1])
        except Exception as exc:  # noqa: BLE001 - name the file in the message
            raise DatasetError(f"Cannot read {tracks_csv} as FMA tracks.csv: {exc}") from exc
        genres_csv = root / "fma_metadata" / "genres.csv"
        genres = pd.read_csv(genres_csv, index_col=0) if genres_csv.is_file() else None
        files = {
            rel: AudioFile(str((audio_dir / rel).resolve()))
            for rel in _list_files(audio_dir)
            if rel.endswith(".mp3")
        }
        return AudioCollection("fma", str(root), self._subset, tracks, genres, files)

    def _load_folder(self) -> AudioCollection:
        root = self._folder
        if root is None:
            raise DatasetError(
                "ingestion.folder is not set: pass "
                '--params "ingestion.source=folder,ingestion.folder=<root>" where <root> holds '
                "one sub-folder per genre (<root>/<genre>/<file>)."
            )
        if not root.is_dir():
            raise DatasetError(f"ingestion.folder={root}: folder not found.")
        relpaths = _list_files(root)
        if not relpaths:
            raise DatasetError(
                f"ingestion.folder={root} is empty: expected <root>/<genre>/<audio file>."
            )
        genres = [rel.split("/", 1)[0] if "/" in rel else "" for rel in relpaths]
        tracks = pd.DataFrame({"relpath": relpaths, "genre": genres})
        files = {rel: AudioFile(str((root / rel).resolve())) for rel in relpaths}
        return AudioCollection(
            "folder",
            str(root),
            None,
            tracks,
            None,
            files,
            split_table=_read_path_table(
                self._split_file, "ingestion.split_file", ["path", "split"]
            ),
            track_metadata=_read_path_table(
                self._metadata_file, "ingestion.metadata_file", ["path"]
            ),
        )

    def save(self, data: None) -> None:
        raise DatasetError("AudioCollectionDataset is read-only: it describes the raw audio.")

    def _exists(self) -> bool:
        if self._source == "folder":
            return bool(self._folder and self._folder.is_dir())
        return bool(self._fma_root and (self._fma_root / "fma_metadata" / "tracks.csv").is_file())

    def _describe(self) -> dict[str, Any]:
        return {
            "source": self._source,
            "fma_root": str(self._fma_root),
            "subset": self._subset,
            "folder": str(self._folder) if self._folder else None,
        }


def _read_path_table(path: Path | None, parameter: str, required: list[str]) -> pd.DataFrame | None:
    """A small CSV keyed by file path relative to the collection folder, checked for its
    columns; None when not configured."""
    if path is None:
        return None
    if not path.is_file():
        raise DatasetError(f"{parameter}={path}: file not found.")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - name the file in the message
        raise DatasetError(f"{parameter}={path}: cannot read it as CSV ({exc}).") from exc
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DatasetError(
            f"{parameter}={path} lacks column(s) {missing}: expected {required} with paths "
            f"relative to ingestion.folder; it has {list(table.columns)}."
        )
    table["path"] = (
        table["path"]
        .str.strip()
        .str.replace("\\", "/", regex=False)
        .str.replace(r"^(\./)+", "", regex=True)
    )
    duplicated = table["path"][table["path"].duplicated()].unique().tolist()
    if duplicated:
        raise DatasetError(f"{parameter}={path} lists these paths twice: {duplicated[:5]}.")
    return table


def _list_files(root: Path) -> list[str]:
    """Every file below ``root`` as a sorted POSIX relative path (os.walk: fast on 100k files)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        found.extend((rel_dir / name).as_posix() for name in filenames)
    return sorted(found)
