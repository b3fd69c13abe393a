"""An on-disk store of per-track feature vectors, filled batch by batch and resumable.

The node that extracts features returns *jobs* (lazy work, like PartitionedDataset's lazy
saving); saving them here runs each job and writes every batch as soon as it is computed, so
memory stays bounded, an interrupted run loses at most one batch, and a re-run skips every item
whose features are already stored for the same input digest.

Layout, one folder per job key (e.g. ``vgg16__imagenet__img-bilinear``)::

    <root>/<key>/part-<hash>.npz   arrays: item_id, digest, and one (n, d) array per name
    <root>/<key>/state.json        the latest run: item -> digest, failures, description,
                                   measurements

Each file is written to a temporary name and renamed (atomic). The part files alone define what
is stored, so a crash between writing a part and ``state.json`` loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from kedro.io import AbstractDataset, DatasetError

from music_genre.atomic import atomic_path

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"


@dataclass
class FeatureBatch:
    """Features of some items: ``features[name]`` has one row per item, in ``item_ids`` order."""

    item_ids: list[str]
    digests: list[str]
    features: dict[str, np.ndarray]


@dataclass
class FeatureFailure:
    """An item whose features could not be computed, and why (reported, never dropped)."""

    item_id: str
    reason: str


class FeatureJob(Protocol):
    """Lazy feature extraction for one store key.

    ``run(stored)`` receives the (item, digest) pairs the store already holds (with every name in
    ``feature_names``) and yields batches of newly computed items and failures. While running it
    fills ``current`` (item -> digest of every item it now covers) and, when it did any work,
    ``measurements`` (e.g. timings).
    """

    key: str
    feature_names: tuple[str, ...]
    description: dict[str, Any]
    current: dict[str, str]
    measurements: dict[str, Any]

    def run(
        self, stored: Container[tuple[str, str]]
    ) -> Iterator[FeatureBatch | FeatureFailure]: ...


@dataclass
class _Location:
    part: Path
    row: int


@dataclass
class FeatureStore:
    """Read access to a feature store folder (what loading the dataset returns)."""

    root: Path
    _index_cache: dict[tuple[str, str], dict[tuple[str, str], _Location]] = field(
        default_factory=dict, repr=False
    )

    def keys(self) -> list[str]:
        return sorted(p.parent.name for p in self.root.glob(f"*/{STATE_FILE}"))

    def state(self, key: str) -> dict[str, Any]:
        path = self.root / key / STATE_FILE
        if not path.is_file():
            raise DatasetError(
                f"No features stored under {self.root / key}: run the feature extraction "
                f"(e.g. kedro run --pipeline=transfer) for this configuration first. "
                f"Stored configurations: {self.keys() or 'none'}."
            )
        return json.loads(path.read_text())

    def items(self, key: str) -> dict[str, str]:
        """Item -> digest of every item the latest run of ``key`` covers."""
        return dict(self.state(key)["items"])

    def failures(self, key: str) -> dict[str, str]:
        return dict(self.state(key).get("failures", {}))

    def _index(self, key: str, name: str) -> dict[tuple[str, str], _Location]:
        if (key, name) not in self._index_cache:
            self._index_cache[(key, name)] = scan_parts(self.root / key, (name,))
        return self._index_cache[(key, name)]

    def matrix(self, key: str, name: str, item_ids: Sequence[str]) -> np.ndarray:
        """Rows of feature ``name`` for ``item_ids`` (in that order), as stored by the latest run."""
        digests = self.items(key)
        index = self._index(key, name)
        missing = [i for i in item_ids if (i, digests.get(i)) not in index]
        if missing:
            raise DatasetError(
                f"{len(missing)} items have no stored {name!r} features under {self.root / key} "
                f"(first: {missing[:5]}); re-run the feature extraction."
            )
        locations = [index[(i, digests[i])] for i in item_ids]
        rows_by_part: dict[Path, list[tuple[int, int]]] = {}
        for position, loc in enumerate(locations):
            rows_by_part.setdefault(loc.part, []).append((position, loc.row))
        out: np.ndarray | None = None
        for part, pairs in rows_by_part.items():
            with np.load(part) as npz:
                values = npz[name]
            if out is None:
                out = np.empty((len(item_ids), values.shape[1]), dtype=values.dtype)
            positions, rows = zip(*pairs, strict=True)
            out[list(positions)] = values[list(rows)]
        if out is None:
            return np.empty((0, 0), dtype=np.float32)
        return out


def scan_parts(folder: Path, names: Sequence[str]) -> dict[tuple[str, str], _Location]:
    """(item, digest) -> where it is stored, over the parts that hold every one of ``names``."""
    index: dict[tuple[str, str], _Location] = {}
    for part in sorted(folder.glob("part-*.npz")):
        try:
            with np.load(part) as npz:
                if not all(n in npz.files for n in names):
                    continue
                ids, digests = npz["item_id"], npz["digest"]
        except Exception as exc:  # noqa: BLE001 - a damaged part is recomputed, and said so
            logger.warning(
                "Ignoring unreadable feature part %s (%s); it will be recomputed", part, exc
            )
            continue
        for row, (item, digest) in enumerate(zip(ids.tolist(), digests.tolist(), strict=True)):
            index[(str(item), str(digest))] = _Location(part, row)
    return index


class FeatureStoreDataset(AbstractDataset[Sequence[FeatureJob], FeatureStore]):
    """Saves feature jobs batch by batch (skipping stored items); loads a ``FeatureStore``."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._root = Path(path)
        self.metadata = metadata

    def save(self, data: Sequence[FeatureJob]) -> None:
        for job in data:
            self._run_job(job)

    def _run_job(self, job: FeatureJob) -> None:
        folder = self._root / job.key
        folder.mkdir(parents=True, exist_ok=True)
        stored = set(scan_parts(folder, job.feature_names))
        failures: dict[str, str] = {}
        written = 0
        for result in job.run(stored):
            if isinstance(result, FeatureFailure):
                failures[result.item_id] = result.reason
                continue
            self._write_part(folder, result)
            written += len(result.item_ids)
        previous = self._previous_state(folder)
        measurements = job.measurements or previous.get("measurements", {})
        state = {
            "description": job.description,
            "feature_names": list(job.feature_names),
            "items": job.current,
            "failures": failures,
            "measurements": measurements,
        }
        with atomic_path(folder / STATE_FILE) as tmp:
            tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        logger.info(
            "Features %s: %d items computed, %d already stored, %d failed",
            job.key,
            written,
            len(job.current) - written,
            len(failures),
        )

    @staticmethod
    def _previous_state(folder: Path) -> dict[str, Any]:
        path = folder / STATE_FILE
        try:
            return json.loads(path.read_text()) if path.is_file() else {}
        except json.JSONDecodeError:
            return {}

    @staticmethod
    def _write_part(folder: Path, batch: FeatureBatch) -> None:
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
                    f"Feature batch for {folder.name}: {name!r} has {len(arrays[name])} rows "
                    f"for {len(batch.item_ids)} items"
                )
        with atomic_path(folder / f"part-{digest}.npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    def load(self) -> FeatureStore:
        if not self._root.is_dir():
            raise DatasetError(
                f"Feature store {self._root} does not exist: run the feature extraction first."
            )
        return FeatureStore(self._root)

    def _exists(self) -> bool:
        return self._root.is_dir() and any(self._root.glob(f"*/{STATE_FILE}"))

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._root)}
