"""The raw audio source: the FMA download (metadata + mp3 tree) or a folder-per-genre collection.

Loading reads only metadata and lists files; the audio itself stays behind lazy ``AudioFile``
handles that nodes decode in parallel. Every location (``fma_root``, ``folder``, ``split_file``,
``metadata_file``) is a local path or an fsspec URL (``s3://bucket/fma``: the protocol's package,
e.g. s3fs, must be installed); the handles then carry URLs and the workers read from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from music_genre.audio.decode import AudioFile
from music_genre.infra.location import absolute, is_dir, is_file, join, list_files

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
        # local paths or fsspec URLs (music_genre.infra.location)
        self._split_file = str(split_file) if split_file else None
        self._metadata_file = str(metadata_file) if metadata_file else None
        self._fma_root = str(fma_root) if fma_root else None
        self._subset = subset
        self._folder = str(folder) if folder else None
        self.metadata = metadata

    def audio_root(self) -> str | None:
        """The folder (or URL) the collection's audio files lie under, as ingestion writes it
        into ``tracks.parquet``; ``None`` when the settings name none."""
        if self._source == "fma" and self._fma_root:
            return absolute(join(self._fma_root, f"fma_{self._subset}"))
        if self._source == "folder" and self._folder:
            return absolute(self._folder)
        return None

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
        if root is None:
            raise DatasetError(
                'ingestion.fma_root is not set: pass --params "ingestion.fma_root=<dir or URL>" '
                "(a folder holding fma_metadata/ and fma_<subset>/)."
            )
        tracks_csv = join(root, "fma_metadata", "tracks.csv")
        if not _checked(is_file, tracks_csv, "ingestion.fma_root"):
            raise DatasetError(
                f"FMA metadata not found: {tracks_csv} does not exist. Download FMA with "
                "`make fma-small`, or point to your copy with "
                '--params "ingestion.fma_root=<dir>" (a folder holding fma_metadata/ and '
                "fma_small/). For the offline demo: `make demo-data`, then `kedro run --env demo`."
            )
        audio_dir = join(root, f"fma_{self._subset}")
        if not _checked(is_dir, audio_dir, "ingestion.fma_root"):
            raise DatasetError(
                f"FMA audio folder not found: {audio_dir}. Unzip fma_{self._subset}.zip into "
                f"{root} (`make fma-small` does it for the small subset) or set "
                '--params "ingestion.fma_root=<dir>".'
            )
        try:
            tracks = pd.read_csv(tracks_csv, index_col=0, header=[0, 1])
        except Exception as exc:  # noqa: BLE001 - name the file in the message
            raise DatasetError(f"Cannot read {tracks_csv} as FMA tracks.csv: {exc}") from exc
        genres_csv = join(root, "fma_metadata", "genres.csv")
        genres = pd.read_csv(genres_csv, index_col=0) if is_file(genres_csv) else None
        top = absolute(audio_dir)  # files unresolved below it: a symlink keeps its own path
        files = {
            rel: AudioFile(join(top, rel))
            for rel in _checked(list_files, audio_dir, "ingestion.fma_root")
            if rel.endswith(".mp3")
        }
        return AudioCollection("fma", root, self._subset, tracks, genres, files)

    def _load_folder(self) -> AudioCollection:
        root = self._folder
        if root is None:
            raise DatasetError(
                "ingestion.folder is not set: pass "
                '--params "ingestion.source=folder,ingestion.folder=<root>" where <root> holds '
                "one sub-folder per genre (<root>/<genre>/<file>)."
            )
        if not _checked(is_dir, root, "ingestion.folder"):
            raise DatasetError(f"ingestion.folder={root}: folder not found.")
        relpaths = _checked(list_files, root, "ingestion.folder")
        if not relpaths:
            raise DatasetError(
                f"ingestion.folder={root} is empty: expected <root>/<genre>/<audio file>."
            )
        genres = [rel.split("/", 1)[0] if "/" in rel else "" for rel in relpaths]
        tracks = pd.DataFrame({"relpath": relpaths, "genre": genres})
        # The root made absolute, each file joined to it unresolved: a symlink in the collection
        # keeps its own path (reports name the file the user has, not e.g. /dev/zero).
        top = absolute(root)
        files = {rel: AudioFile(join(top, rel)) for rel in relpaths}
        return AudioCollection(
            "folder",
            root,
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
        try:
            if self._source == "folder":
                return bool(self._folder and is_dir(self._folder))
            return bool(
                self._fma_root and is_file(join(self._fma_root, "fma_metadata", "tracks.csv"))
            )
        except OSError:  # e.g. the URL's filesystem package is missing: load() says so
            return False

    def _describe(self) -> dict[str, Any]:
        return {
            "source": self._source,
            "fma_root": self._fma_root,
            "subset": self._subset,
            "folder": self._folder,
        }


def _checked(check: Any, location: str, parameter: str) -> Any:
    """``check(location)``, with a storage error (missing filesystem package, credentials,
    network) turned into a DatasetError that names the parameter."""
    try:
        return check(location)
    except OSError as exc:
        raise DatasetError(f"{parameter}: cannot read {location}: {exc}") from exc


def _read_path_table(path: str | None, parameter: str, required: list[str]) -> pd.DataFrame | None:
    """A small CSV keyed by file path relative to the collection folder, checked for its
    columns; None when not configured."""
    if path is None:
        return None
    if not _checked(is_file, path, parameter):
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
