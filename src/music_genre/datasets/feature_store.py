"""An on-disk store of per-track feature vectors, filled batch by batch and resumable.

The project's one store pattern (docs/dask.md, "One store pattern"), as for the spectrogram and
feature-row stores: the read-only :class:`FeatureStoreIndexDataset` on the same folder says what
is stored (key -> (item, digest) -> feature names), the extraction node computes only what is
missing and yields :class:`FeatureBatch` objects (a Kedro generator node), each written at once
by :class:`FeatureStoreDataset`, then one :class:`FeatureManifest` per key that records what the
run covers (its items, failures, description and measurements). Memory stays bounded, an
interrupted run loses at most one batch, and a re-run skips every item whose features are
already stored for the same input digest.

Layout, one folder per job key (e.g. ``vgg16__imagenet__img-bilinear``)::

    <root>/<key>/part-<hash>.npz   arrays: item_id, digest, and one (n, d) array per name
    <root>/<key>/state.json        the latest run: item -> digest, failures, description,
                                   measurements

Each file is written atomically (:mod:`music_genre.infra.storage`; ``path`` may be an fsspec URL). The
part files alone define what is stored, so a crash between writing a part and ``state.json``
loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from kedro.io import DatasetError

from music_genre.infra.storage import StoreFolder

from .store_base import StoreFolderDataset, StoreIndexDataset

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"


@dataclass
class FeatureBatch:
    """Features of some items of one store key: ``features[name]`` has one row per item, in
    ``item_ids`` order."""

    item_ids: list[str]
    digests: list[str]
    features: dict[str, np.ndarray]
    key: str = ""


@dataclass
class FeatureFailure:
    """An item whose features could not be computed, and why (reported, never dropped)."""

    item_id: str
    reason: str


@dataclass
class FeatureManifest:
    """What one run of a key covers, written as ``state.json`` after its batches: ``items``
    (item -> digest, stored ones and new ones), ``failures`` (item -> reason), the settings
    that produced the features (``description``) and, when the run computed anything, its
    ``measurements`` (empty: the previous run's are kept)."""

    key: str
    feature_names: tuple[str, ...]
    description: dict[str, Any]
    items: dict[str, str]
    failures: dict[str, str] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)
    computed: int = 0


@dataclass
class _Location:
    part: str  # the part file's name in its key's folder
    row: int


@dataclass
class FeatureStore:
    """Read access to a feature store folder (what loading the dataset returns)."""

    folder: StoreFolder
    # key -> its parts' index, scanned once (every cut level of a key reads the same parts)
    _parts_cache: dict[str, dict[tuple[str, str], tuple[_Location, frozenset[str]]]] = field(
        default_factory=dict, repr=False
    )

    @property
    def root(self) -> str:
        return self.folder.display()

    def keys(self) -> list[str]:
        return sorted(
            e.name
            for e in self.folder.entries()
            if e.is_dir and self.folder.is_file(e.name, STATE_FILE)
        )

    def state(self, key: str) -> dict[str, Any]:
        if not self.folder.is_file(key, STATE_FILE):
            raise DatasetError(
                f"No features stored under {self.folder.display(key)}: run the feature "
                f"extraction (e.g. kedro run --pipeline=transfer) for this configuration first. "
                f"Stored configurations: {self.keys() or 'none'}."
            )
        return json.loads(self.folder.read_text(key, STATE_FILE))

    def items(self, key: str) -> dict[str, str]:
        """Item -> digest of every item the latest run of ``key`` covers."""
        return dict(self.state(key)["items"])

    def failures(self, key: str) -> dict[str, str]:
        return dict(self.state(key).get("failures", {}))

    def _index(self, key: str, name: str) -> dict[tuple[str, str], _Location]:
        if key not in self._parts_cache:
            self._parts_cache[key] = scan_parts(self.folder.child(key))
        return {
            pair: location
            for pair, (location, names) in self._parts_cache[key].items()
            if name in names
        }

    def matrix(self, key: str, name: str, item_ids: Sequence[str]) -> np.ndarray:
        """Rows of feature ``name`` for ``item_ids`` (in that order), as stored by the latest run."""
        digests = self.items(key)
        index = self._index(key, name)
        missing = [i for i in item_ids if (i, digests.get(i)) not in index]
        if missing:
            raise DatasetError(
                f"{len(missing)} items have no stored {name!r} features under "
                f"{self.folder.display(key)} (first: {missing[:5]}); re-run the feature "
                "extraction."
            )
        locations = [index[(i, digests[i])] for i in item_ids]
        rows_by_part: dict[str, list[tuple[int, int]]] = {}
        for position, loc in enumerate(locations):
            rows_by_part.setdefault(loc.part, []).append((position, loc.row))
        out: np.ndarray | None = None
        for part, pairs in rows_by_part.items():
            try:
                with self.folder.open(key, part) as handle, np.load(handle) as npz:
                    values = npz[name]
            except Exception as exc:
                raise DatasetError(
                    f"Damaged feature part {self.folder.display(key, part)} "
                    f"({type(exc).__name__}: {exc}): re-run the feature extraction "
                    "(kedro run --pipelines=transfer), which recomputes it."
                ) from exc
            if out is None:
                out = np.empty((len(item_ids), values.shape[1]), dtype=values.dtype)
            positions, rows = zip(*pairs, strict=True)
            out[list(positions)] = values[list(rows)]
        if out is None:
            return np.empty((0, 0), dtype=np.float32)
        return out


def scan_parts(
    folder: StoreFolder, damaged: list[str] | None = None
) -> dict[tuple[str, str], tuple[_Location, frozenset[str]]]:
    """(item, digest) -> where it is stored and the feature names stored with it, over the part
    files of one key. A part that cannot be read (truncated, overwritten) is logged by name,
    left out (so its items are computed again) and its name appended to ``damaged``."""
    index: dict[tuple[str, str], tuple[_Location, frozenset[str]]] = {}
    parts = sorted(
        e.name for e in folder.entries() if e.name.startswith("part-") and e.name.endswith(".npz")
    )
    for part in parts:
        try:
            with folder.open(part) as handle, np.load(handle) as npz:
                names = frozenset(npz.files) - {"item_id", "digest"}
                ids, digests = npz["item_id"], npz["digest"]
        except Exception as exc:  # noqa: BLE001 - a damaged part is recomputed, and said so
            logger.warning(
                "Damaged feature part %s (%s: %s); its items will be recomputed",
                folder.display(part),
                type(exc).__name__,
                exc,
            )
            if damaged is not None:
                damaged.append(part)
            continue
        for row, (item, digest) in enumerate(zip(ids.tolist(), digests.tolist(), strict=True)):
            index[(str(item), str(digest))] = (_Location(part, row), names)
    return index


class FeatureStoreDataset(StoreFolderDataset):
    """Saves :class:`FeatureBatch` and :class:`FeatureManifest` objects as a generator node
    yields them; loads a :class:`FeatureStore`."""

    def save(self, data: FeatureBatch | FeatureManifest) -> None:
        if isinstance(data, FeatureBatch):
            self._write_part(data)
        elif isinstance(data, FeatureManifest):
            self._write_manifest(data)
        else:
            raise DatasetError(
                f"{type(self).__name__} saves FeatureBatch and FeatureManifest objects, got "
                f"{type(data).__name__}"
            )

    def _write_manifest(self, manifest: FeatureManifest) -> None:
        folder = self._folder.child(_checked_key(manifest.key))
        folder.makedirs()
        damaged: list[str] = []
        scan_parts(folder, damaged)
        for part in damaged:  # their items were recomputed into new parts by this run
            folder.remove(part)
        previous = folder.read_json(STATE_FILE) or {}
        state = {
            "description": manifest.description,
            "feature_names": list(manifest.feature_names),
            "items": dict(manifest.items),
            "failures": dict(manifest.failures),
            "measurements": manifest.measurements or previous.get("measurements", {}),
        }
        folder.write_text(json.dumps(state, indent=1, sort_keys=True), STATE_FILE)
        logger.info(
            "Features %s: %d items computed, %d already stored, %d failed",
            manifest.key,
            manifest.computed,
            len(manifest.items) - manifest.computed,
            len(manifest.failures),
        )

    def _write_part(self, batch: FeatureBatch) -> None:
        folder = self._folder.child(_checked_key(batch.key))
        folder.makedirs()
        names = sorted(batch.features)
        digest = hashlib.sha1(
            json.dumps([batch.item_ids, batch.digests, names]).encode()
        ).hexdigest()[:16]
        arrays = {
            "item_id": np.asarray(batch.item_ids, dtype=str),
            "digest": np.asarray(batch.digests, dtype=str),
            **{name: np.ascontiguousarray(batch.features[name]) for name in names},
        }
        for name in names:
            if len(arrays[name]) != len(batch.item_ids):
                raise DatasetError(
                    f"Feature batch for {batch.key}: {name!r} has {len(arrays[name])} rows "
                    f"for {len(batch.item_ids)} items"
                )
        with folder.writing(f"part-{digest}.npz") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool

    def load(self) -> FeatureStore:
        if not self._folder.is_dir():
            raise DatasetError(
                f"Feature store {self._folder.display()} does not exist: run the feature "
                "extraction first."
            )
        return FeatureStore(self._folder)

    def _exists(self) -> bool:
        return bool(FeatureStore(self._folder).keys())


class FeatureStoreIndexDataset(StoreIndexDataset):
    """Read-only view of what a feature store holds, for the node that skips stored items:
    ``{key: {(item, digest): feature names stored for it}}``. Reads the parts' item lists."""

    writer = "FeatureStoreDataset"

    def load(self) -> dict[str, dict[tuple[str, str], frozenset[str]]]:
        return {
            entry.name: {
                pair: names
                for pair, (_, names) in scan_parts(self._folder.child(entry.name)).items()
            }
            for entry in self._folder.entries()
            if entry.is_dir
        }


def stored_with(
    index: Mapping[tuple[str, str], frozenset[str]], names: Sequence[str]
) -> set[tuple[str, str]]:
    """The (item, digest) pairs of one key's index stored with every one of ``names``."""
    wanted = set(names)
    return {pair for pair, stored in index.items() if wanted <= stored}


def _checked_key(key: str) -> str:
    if not key or "/" in key or "\\" in key or key.startswith("."):
        raise DatasetError(f"Feature store key {key!r} cannot name a folder")
    return key
