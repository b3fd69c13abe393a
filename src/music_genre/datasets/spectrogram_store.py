"""A folder of spectrograms, one ``.npy`` per key, written as they are computed.

Layout under ``path`` (e.g. ``data/04_feature/log_mel_spectrograms``)::

    _current.json                   what loading returns: fingerprint, settings, key -> tag
    _failures.json                  keys the last run could not compute, with the reason
    <fingerprint>/_settings.json    the settings that produced this folder (for people)
    <fingerprint>/<key>.<tag>.npy   one array (float16 by default: 320 KB for 128 x 1280)

``fingerprint`` hashes the settings (:func:`music_genre.audio.spectrograms.settings_fingerprint`), so
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

``path`` may be a local folder or an fsspec URL (``s3://bucket/spectrograms``; ``credentials``
and ``fs_args`` as in kedro-datasets), see :mod:`music_genre.infra.storage`. This store follows the
project's one store pattern (docs/dask.md, "One store pattern"): a read-only *index* entry on the same
folder says what is stored, a generator node computes only what is missing (its per-track work
through :func:`music_genre.infra.parallel.run_tasks`) and yields write batches, and ``save`` writes
each batch file by file, atomically, with a manifest that says what the run covers.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from kedro.io import DatasetError

from music_genre.audio.spectrograms import (
    STORE_FORMAT_VERSION,
    LazySpectrograms,
    SpectrogramBatch,
    load_spectrogram_file,
)
from music_genre.infra.storage import StoreFolder

from .store_base import StoreFolderDataset, StoreIndexDataset

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


def _write_json(folder: StoreFolder, name: str, content: Mapping[str, Any]) -> None:
    folder.write_text(json.dumps(content, indent=1, sort_keys=True, default=str), name)


def npy_damage(folder: StoreFolder, name: str, size: int) -> str | None:
    """Why a stored ``.npy`` file cannot be a complete array (``None`` if it can): its header
    must parse and the file must hold exactly the bytes the header announces. Reads only the
    header (a few hundred bytes), so checking every file of a store on each run stays cheap;
    it catches truncated and overwritten files, not a flipped bit inside the data."""
    try:
        with folder.open(name) as handle:
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


def _key_and_tag(name: str) -> tuple[str, str] | None:
    """``(key, tag)`` of a ``<key>.<tag>.npy`` file name; ``None`` for anything else
    (temporary files of an interrupted write start with a dot)."""
    if name.startswith(".") or not name.endswith(".npy"):
        return None
    key, dot, tag = name[: -len(".npy")].rpartition(".")
    if not (dot and key and _TAG.match(tag)):
        return None
    return key, tag


def list_store(folder: StoreFolder) -> dict[str, set[str]]:
    """``{key: {tags}}`` of the complete ``<key>.<tag>.npy`` files in one fingerprint folder.
    A damaged file (:func:`npy_damage`) is logged by name and left out, so the pipeline that
    writes the store computes it again and replaces it."""
    found: dict[str, set[str]] = {}
    for entry in folder.entries():
        parsed = _key_and_tag(entry.name)
        if parsed is None or entry.is_dir:
            continue
        damage = npy_damage(folder, entry.name, entry.size)
        if damage:
            logger.warning(
                "Damaged stored array %s: %s; it will be recomputed",
                folder.display(entry.name),
                damage,
            )
            continue
        found.setdefault(parsed[0], set()).add(parsed[1])
    return found


class SpectrogramStoreDataset(StoreFolderDataset):
    """Loads ``{key: callable -> float32 array}`` (a :class:`LazySpectrograms`, like
    ``partitions.PartitionedDataset``); saves :class:`SpectrogramBatch` objects one at a time.

    Saving never deletes other keys: a node yields its batches one by one (a Kedro generator
    node) and each is written at once. A *manifest* batch sets what ``load`` returns: the keys
    of that run with their tags (keys whose file is not written yet, or failed, are left out).
    """

    def __init__(
        self,
        path: str,
        allow_missing: bool = False,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(path, credentials, fs_args, metadata)
        # allow_missing: a store that was never written loads as an empty mapping (its
        # ``fingerprint`` is ""), for readers that need it only in some modes
        self.may_be_absent = allow_missing

    # -- loading ---------------------------------------------------------------------------
    def _manifest(self) -> dict[str, Any]:
        where = self._folder.display(MANIFEST)
        if not self._folder.is_file(MANIFEST):
            raise DatasetError(
                f"No spectrograms in {self._folder.display()} (no {MANIFEST}): run "
                "`kedro run --pipelines=spectrogram` (and `--pipelines=augmentation` for the "
                "augmented copies) first."
            )
        try:
            manifest = json.loads(self._folder.read_text(MANIFEST))
        except (OSError, ValueError) as exc:
            raise DatasetError(
                f"{where} is unreadable ({exc}); delete it and re-run the pipeline "
                "that writes this store (finished files are kept and reused)."
            ) from exc
        if manifest.get("format") != STORE_FORMAT_VERSION:
            raise DatasetError(
                f"{where} has store format {manifest.get('format')!r}, this code reads "
                f"{STORE_FORMAT_VERSION}: re-run the pipeline that writes this store."
            )
        return manifest

    def load(self) -> LazySpectrograms:
        if self.may_be_absent and not self._exists():
            return LazySpectrograms({})
        manifest = self._manifest()
        fingerprint = manifest["fingerprint"]
        folder = self._folder.child(fingerprint)
        present = list_store(folder)
        options = folder.options or None
        loaders: dict[str, Any] = {}
        tags: dict[str, str] = {}
        for key, tag in sorted(manifest["tags"].items()):
            if tag in present.get(key, ()):
                location = (
                    folder.path(f"{key}.{tag}.npy")
                    if folder.is_local
                    else (folder.display(f"{key}.{tag}.npy"))
                )
                loaders[key] = functools.partial(load_spectrogram_file, location, options)
                tags[key] = tag
        # The manifest batch of a run resets the failure list, so it is always the last run's.
        failures = self._failures(fingerprint)
        return LazySpectrograms(loaders, fingerprint, manifest["settings"], tags, failures)

    def _failures(self, fingerprint: str) -> dict[str, str]:
        content = self._folder.read_json(FAILURES)
        if not isinstance(content, dict) or content.get("fingerprint") != fingerprint:
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
        folder = self._folder.child(data.fingerprint)
        folder.makedirs()
        if data.is_manifest:
            self._save_manifest(folder, data)
        for key, array in data.arrays.items():
            self._save_array(folder, key, data.tags[key], np.asarray(array))
        if data.failures is not None:
            self._save_failures(data.fingerprint, data.failures)

    def _save_failures(self, fingerprint: str, failures: Mapping[str, str]) -> None:
        content = {"fingerprint": fingerprint, "failures": dict(sorted(failures.items()))}
        if self._folder.read_json(FAILURES) != content:  # rewritten only when it changes
            _write_json(self._folder, FAILURES, content)

    def _save_manifest(self, folder: StoreFolder, batch: SpectrogramBatch) -> None:
        for key, tag in batch.tags.items():
            _check_key(key)
            if not _TAG.match(tag):
                raise DatasetError(f"Invalid version tag {tag!r} for key {key!r}")
        if not folder.is_file(SETTINGS_FILE):
            _write_json(folder, SETTINGS_FILE, {"format": STORE_FORMAT_VERSION, **batch.settings})
        manifest = {
            "format": STORE_FORMAT_VERSION,
            "fingerprint": batch.fingerprint,
            "settings": batch.settings,
            "tags": dict(sorted(batch.tags.items())),
        }
        # a run that changes nothing leaves the store untouched
        if self._folder.read_json(MANIFEST) != json.loads(json.dumps(manifest, default=str)):
            _write_json(self._folder, MANIFEST, manifest)
        self._remove_superseded(folder, batch.tags)

    @staticmethod
    def _save_array(folder: StoreFolder, key: str, tag: str, array: np.ndarray) -> None:
        _check_key(key)
        with folder.writing(f"{key}.{tag}.npy") as handle:
            np.save(handle, array, allow_pickle=False)

    @staticmethod
    def _remove_superseded(folder: StoreFolder, tags: Mapping[str, str]) -> None:
        """One listing per run: older versions of the run's keys (their audio file changed)
        and temporary files left by a killed run (never by a finished write)."""
        for entry in folder.entries():
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                folder.remove(entry.name)
                continue
            parsed = _key_and_tag(entry.name)
            if parsed is not None and parsed[0] in tags and tags[parsed[0]] != parsed[1]:
                folder.remove(entry.name)

    def _exists(self) -> bool:
        return self._folder.is_file(MANIFEST)

    def _describe(self) -> dict[str, Any]:
        return {"path": self._folder.display(), "allow_missing": self.may_be_absent}


class SpectrogramStoreIndexDataset(StoreIndexDataset):
    """Read-only view of what a spectrogram store already holds, for nodes that skip finished
    work: ``{fingerprint: {key: {tags}}}`` over every settings folder. Lists file names only."""

    writer = "SpectrogramStoreDataset"

    def load(self) -> dict[str, dict[str, set[str]]]:
        return {
            entry.name: list_store(self._folder.child(entry.name))
            for entry in self._folder.entries()
            if entry.is_dir and _FINGERPRINT.match(entry.name)
        }
