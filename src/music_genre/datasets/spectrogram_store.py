"""A folder of spectrograms, one ``.npy`` per key, written as they are computed.

Layout under ``path`` (e.g. ``data/04_feature/log_mel_spectrograms``)::

    _current.json                   what loading returns: fingerprint, settings, key -> tag
    _failures.json                  keys the last run could not compute, with the reason
    <fingerprint>/_settings.json    the settings that produced this folder (for people)
    <fingerprint>/<key>.<tag>.npy   one array (float16 by default: 320 KB for 128 x 1280)

``fingerprint`` hashes the settings (:func:`music_genre.spectrograms.settings_fingerprint`), so
results of other settings live in other folders and are reused if the settings come back;
delete a folder by hand to reclaim its space. ``tag`` versions one key (for spectrograms,
the audio file's size and modification time), so a replaced audio file is recomputed.

Why this format: one small file per track is written atomically (temporary file, then
``os.replace``) the moment it is computed, so memory never holds more than one write batch, an
interrupted run leaves only complete files (plus at most stray ``.*.tmp`` files, ignored and
cleaned up) and resumes where it stopped, and a reader loads exactly the tracks it needs in
any order (shuffling, ``tf.data``). ``.npy`` needs no extra library and loads in well under a
millisecond. FMA-small: 8,000 x 320 KB = about 2.6 GB as float16 (float16 keeps 11
significant bits: a relative error below 2^-11, i.e. under 0.03 dB for values within
+-128 dB; set ``spectrogram.storage_dtype: float32`` to store exactly, at twice the size).
Sharded formats (HDF5, TFRecord, zarr) read faster sequentially but make resuming, skipping
and random access harder; at this scale the per-file cost is negligible next to decoding MP3.
One writer at a time: two runs writing the same store concurrently are not supported.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError

from music_genre.atomic import atomic_path
from music_genre.spectrograms import (
    STORE_FORMAT_VERSION,
    LazySpectrograms,
    SpectrogramBatch,
    load_spectrogram_file,
)

logger = logging.getLogger(__name__)

MANIFEST = "_current.json"
FAILURES = "_failures.json"
SETTINGS_FILE = "_settings.json"
_FINGERPRINT = re.compile(r"^[0-9a-f]{6,64}$")
_TAG = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def _check_key(key: str) -> None:
    if not key or "/" in key or "\\" in key or key.startswith(".") or "\x00" in key:
        raise DatasetError(
            f"Spectrogram key {key!r} cannot be a file name (empty, a path or hidden); "
            "track ids must be plain names like '000002'."
        )


def _write_json(path: Path, content: Mapping[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(content, indent=1, sort_keys=True, default=str))


def npy_damage(path: str, size: int) -> str | None:
    """Why a stored ``.npy`` file cannot be a complete array (``None`` if it can): its header
    must parse and the file must hold exactly the bytes the header announces. Reads only the
    header (a few hundred bytes), so checking every file of a store on each run stays cheap;
    it catches truncated and overwritten files, not a flipped bit inside the data."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(handle)
            expected = handle.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    except (OSError, ValueError, SyntaxError, TypeError) as exc:
        return f"unreadable header ({type(exc).__name__}: {exc})"
    if dtype.hasobject:
        return "holds Python objects, not numbers"
    if size != expected:
        return f"{size} bytes where its header announces {expected} (truncated or overwritten)"
    return None


def list_store(folder: Path) -> dict[str, set[str]]:
    """``{key: {tags}}`` of the complete ``<key>.<tag>.npy`` files in one fingerprint folder
    (temporary files of an interrupted write start with a dot and are skipped). A damaged file
    (:func:`npy_damage`) is logged by name and left out, so the pipeline that writes the store
    computes it again and replaces it."""
    found: dict[str, set[str]] = {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return found
    for entry in entries:
        name = entry.name
        if name.startswith(".") or not name.endswith(".npy"):
            continue
        key, dot, tag = name[: -len(".npy")].rpartition(".")
        if not (dot and key and _TAG.match(tag)):
            continue
        damage = npy_damage(entry.path, entry.stat().st_size)
        if damage:
            logger.warning("Damaged stored array %s: %s; it will be recomputed", entry.path, damage)
            continue
        found.setdefault(key, set()).add(tag)
    return found


class SpectrogramStoreDataset(AbstractDataset[SpectrogramBatch, LazySpectrograms]):
    """Loads ``{key: callable -> float32 array}`` (a :class:`LazySpectrograms`, like
    ``partitions.PartitionedDataset``); saves :class:`SpectrogramBatch` objects one at a time.

    Saving never deletes other keys: a node yields its batches one by one (a Kedro generator
    node) and each is written at once. A *manifest* batch sets what ``load`` returns: the keys
    of that run with their tags (keys whose file is not written yet, or failed, are left out).
    """

    def __init__(
        self, path: str, allow_missing: bool = False, metadata: dict[str, Any] | None = None
    ) -> None:
        self._path = Path(path)
        # allow_missing: a store that was never written loads as an empty mapping (its
        # ``fingerprint`` is ""), for readers that need it only in some modes
        self.may_be_absent = allow_missing
        self.metadata = metadata

    # -- loading ---------------------------------------------------------------------------
    def _manifest(self) -> dict[str, Any]:
        manifest_path = self._path / MANIFEST
        if not manifest_path.is_file():
            raise DatasetError(
                f"No spectrograms in {self._path} (no {MANIFEST}): run "
                "`kedro run --pipelines=spectrogram` (and `--pipelines=augmentation` for the "
                "augmented copies) first."
            )
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise DatasetError(
                f"{manifest_path} is unreadable ({exc}); delete it and re-run the pipeline "
                "that writes this store (finished files are kept and reused)."
            ) from exc
        if manifest.get("format") != STORE_FORMAT_VERSION:
            raise DatasetError(
                f"{manifest_path} has store format {manifest.get('format')!r}, this code reads "
                f"{STORE_FORMAT_VERSION}: re-run the pipeline that writes this store."
            )
        return manifest

    def load(self) -> LazySpectrograms:
        if self.may_be_absent and not self._exists():
            return LazySpectrograms({})
        manifest = self._manifest()
        fingerprint = manifest["fingerprint"]
        folder = self._path / fingerprint
        present = list_store(folder)
        loaders: dict[str, Any] = {}
        tags: dict[str, str] = {}
        for key, tag in sorted(manifest["tags"].items()):
            if tag in present.get(key, ()):
                loaders[key] = functools.partial(
                    load_spectrogram_file, str(folder / f"{key}.{tag}.npy")
                )
                tags[key] = tag
        # The manifest batch of a run resets the failure list, so it is always the last run's.
        failures = self._failures(fingerprint)
        return LazySpectrograms(loaders, fingerprint, manifest["settings"], tags, failures)

    def _failures(self, fingerprint: str) -> dict[str, str]:
        try:
            content = json.loads((self._path / FAILURES).read_text())
        except (OSError, ValueError):
            return {}
        if content.get("fingerprint") != fingerprint:
            return {}
        return dict(content.get("failures", {}))

    # -- saving ----------------------------------------------------------------------------
    def save(self, data: SpectrogramBatch) -> None:
        if not isinstance(data, SpectrogramBatch):
            raise DatasetError(
                f"{type(self).__name__} saves SpectrogramBatch objects, got {type(data).__name__}"
            )
        if not _FINGERPRINT.match(data.fingerprint):
            raise DatasetError(f"Invalid settings fingerprint {data.fingerprint!r}")
        folder = self._path / data.fingerprint
        folder.mkdir(parents=True, exist_ok=True)
        if data.is_manifest:
            self._save_manifest(folder, data)
        for key, array in data.arrays.items():
            self._save_array(folder, key, data.tags[key], np.asarray(array))
        if data.failures is not None:
            self._save_failures(data.fingerprint, data.failures)

    def _save_failures(self, fingerprint: str, failures: Mapping[str, str]) -> None:
        content = {"fingerprint": fingerprint, "failures": dict(sorted(failures.items()))}
        path = self._path / FAILURES
        try:
            unchanged = json.loads(path.read_text()) == content
        except (OSError, ValueError):
            unchanged = False
        if not unchanged:  # rewritten only when the list changes
            _write_json(path, content)

    def _save_manifest(self, folder: Path, batch: SpectrogramBatch) -> None:
        for key, tag in batch.tags.items():
            _check_key(key)
            if not _TAG.match(tag):
                raise DatasetError(f"Invalid version tag {tag!r} for key {key!r}")
        settings_path = folder / SETTINGS_FILE
        if not settings_path.is_file():
            _write_json(settings_path, {"format": STORE_FORMAT_VERSION, **batch.settings})
        manifest = {
            "format": STORE_FORMAT_VERSION,
            "fingerprint": batch.fingerprint,
            "settings": batch.settings,
            "tags": dict(sorted(batch.tags.items())),
        }
        manifest_path = self._path / MANIFEST
        try:
            unchanged = json.loads(manifest_path.read_text()) == json.loads(
                json.dumps(manifest, default=str)
            )
        except (OSError, ValueError):
            unchanged = False
        if not unchanged:  # a run that changes nothing leaves the store untouched
            _write_json(manifest_path, manifest)
        self._remove_stray_temporaries(folder)

    @staticmethod
    def _save_array(folder: Path, key: str, tag: str, array: np.ndarray) -> None:
        _check_key(key)
        target = folder / f"{key}.{tag}.npy"
        with atomic_path(target) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
        # An older version of the same key (its audio file changed) is now superseded.
        for stale in folder.glob(f"{glob_escape(key)}.*.npy"):
            if stale.name != target.name and stale.name[len(key) + 1 : -4].count(".") == 0:
                stale.unlink(missing_ok=True)

    @staticmethod
    def _remove_stray_temporaries(folder: Path) -> None:
        """Temporary files left by a killed run (never by a finished write)."""
        for stray in folder.glob(".*.tmp"):
            stray.unlink(missing_ok=True)

    def _exists(self) -> bool:
        return (self._path / MANIFEST).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "allow_missing": self.may_be_absent}


class SpectrogramStoreIndexDataset(AbstractDataset[None, dict[str, dict[str, set[str]]]]):
    """Read-only view of what a spectrogram store already holds, for nodes that skip finished
    work: ``{fingerprint: {key: {tags}}}`` over every settings folder. Lists file names only."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> dict[str, dict[str, set[str]]]:
        if not self._path.is_dir():
            return {}
        return {
            entry.name: list_store(Path(entry.path))
            for entry in os.scandir(self._path)
            if entry.is_dir() and _FINGERPRINT.match(entry.name)
        }

    def save(self, data: None) -> None:
        raise DatasetError(
            f"{type(self).__name__} is read-only: it lists what {self._path} holds; "
            "save spectrograms to the SpectrogramStoreDataset on the same folder."
        )

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


def glob_escape(text: str) -> str:
    """Escape glob metacharacters of a key (track ids may hold ``[`` in folder collections)."""
    import glob

    return glob.escape(text)
