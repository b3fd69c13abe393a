"""Splits of folder collections: a published split file used as is, or a seeded split that keeps
every group (e.g. an artist) on one side, so that no artist is both trained on and tested on.

FMA brings its own official split (artist-aware by construction) and keeps it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from music_genre.audio.decode import read_tag
from music_genre.config import IngestionParams, node_settings
from music_genre.contracts import SPLITS
from music_genre.datasets import AudioCollection
from music_genre.errors import CollectionError
from music_genre.infra.location import absolute, is_url, join, relative_to

logger = logging.getLogger(__name__)

GROUP_COLUMN = "group"
# libsndfile's string metadata (ID3 / RIFF INFO / Vorbis comments, as far as it reads them)
TAG_FIELDS = ("title", "artist", "album", "genre", "date", "comment")


def _relpath(path: str, root: str) -> str:
    """``path`` relative to the collection ``root`` (local paths or URLs alike)."""
    rel = relative_to(path, root)
    if rel is not None:
        return rel
    return path if is_url(path) else Path(path).as_posix()


def _rejected_row(rel: str, root: str, split: str, reason: str) -> dict[str, Any]:
    track_id = re.sub(r"[^A-Za-z0-9._-]+", "_", rel.rsplit(".", 1)[0].replace("/", "__"))
    return {
        "track_id": track_id,
        "path": join(root, rel),
        "genre": rel.split("/", 1)[0] if "/" in rel else "",
        "split": split,
        "stage": "split_file",
        "reason": reason,
    }


def _apply_split_file(
    candidates: pd.DataFrame, collection: AudioCollection, name: str | None
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    table = collection.split_table
    bad_values = table[~table["split"].isin(SPLITS)]
    if len(bad_values):
        raise ValueError(
            f"ingestion.split_file={name}: split must be one of {SPLITS}; rows "
            f"{bad_values.head(5).to_dict(orient='records')} are not."
        )
    root = absolute(collection.root)
    listed = dict(zip(table["path"], table["split"], strict=True))
    rel = candidates["path"].map(lambda p: _relpath(p, root))
    candidates = candidates.assign(split=rel.map(listed).fillna(""))
    rejected = [
        _rejected_row(
            r,
            root,
            "",
            f"present in ingestion.folder but not listed in ingestion.split_file={name}",
        )
        for r in rel[candidates["split"] == ""]
    ]
    rejected += [
        _rejected_row(
            r,
            root,
            split,
            f"listed in ingestion.split_file={name} ({split}) but not found in ingestion.folder",
        )
        for r, split in listed.items()
        if r not in collection.files
    ]
    logger.info(
        "ingestion.split_file=%s: %d files keep their published split; %d present but not "
        "listed, %d listed but missing (both in the bad-tracks report)",
        name,
        int((candidates["split"] != "").sum()),
        int((candidates["split"] == "").sum()),
        len(rejected) - int((candidates["split"] == "").sum()),
    )
    return candidates[candidates["split"] != ""], rejected


def _groups(
    candidates: pd.DataFrame, collection: AudioCollection, settings: IngestionParams
) -> pd.Series:
    """The ``group_by`` value of each candidate: from ``ingestion.metadata_file`` when given,
    else from the file's tags. A file without one becomes a group of its own (logged)."""
    group_by = str(settings.group_by)
    root = absolute(collection.root)
    rel = candidates["path"].map(lambda p: _relpath(p, root))
    metadata = collection.track_metadata
    if metadata is not None:
        if group_by not in metadata.columns:
            raise ValueError(
                f"ingestion.group_by={group_by!r} is not a column of ingestion.metadata_file="
                f"{settings.metadata_file} (columns {list(metadata.columns)})."
            )
        values = rel.map(dict(zip(metadata["path"], metadata[group_by], strict=True)))
    elif group_by in TAG_FIELDS:
        values = candidates["path"].map(lambda p: read_tag(p, group_by))
    else:
        raise ValueError(
            f"ingestion.group_by={group_by!r}: set ingestion.metadata_file (CSV with columns "
            f"path,{group_by}) or group by a tag libsndfile reads ({', '.join(TAG_FIELDS)})."
        )
    values = values.fillna("").astype(str).str.strip()
    missing = values == ""
    if missing.any():
        logger.warning(
            "ingestion.group_by=%s: %d files have no %s; each forms a group of its own (e.g. %s)",
            group_by,
            int(missing.sum()),
            group_by,
            rel[missing].head(3).tolist(),
        )
    return (group_by + "=" + values).where(~missing, "file=" + rel)


def assign_folder_splits(
    candidates: pd.DataFrame,
    rejected: pd.DataFrame,
    collection: AudioCollection,
    params: Mapping[str, Any] | IngestionParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply ``ingestion.split_file`` (the published split, as is) or attach the
    ``ingestion.group_by`` group of every candidate, for a folder collection.

    Files the split file does not list, and files it lists that are not on disk, join the
    rejected tracks with their reason. FMA keeps its official split (both settings ignored)."""
    settings = node_settings(IngestionParams, params)
    split_file, group_by = settings.split_file, settings.group_by
    if collection.source != "folder":
        if split_file or group_by:
            logger.warning(
                "ingestion.split_file / group_by apply to folder collections only; "
                "FMA keeps its official split"
            )
        return candidates, rejected
    extra: list[dict[str, Any]] = []
    if collection.split_table is not None:
        if group_by:
            logger.warning(
                "ingestion.split_file is set: its published split is used as is, "
                "ingestion.group_by=%s is ignored",
                group_by,
            )
        candidates, extra = _apply_split_file(candidates, collection, split_file)
    elif group_by:
        candidates = candidates.assign(**{GROUP_COLUMN: _groups(candidates, collection, settings)})
    if extra:
        rejected = pd.concat(
            [rejected, pd.DataFrame(extra).reindex(columns=rejected.columns)], ignore_index=True
        ).astype(rejected.dtypes.to_dict())
    return candidates.reset_index(drop=True), rejected


def grouped_split(
    genres: pd.Series,
    groups: pd.Series,
    fractions: Mapping[str, float],
    seed: int,
    group_by: str | None = None,
) -> np.ndarray:
    """training/validation/test with every group on one side, stratified by genre as far as
    the groups allow, seeded: StratifiedGroupKFold folds of size min(validation, test) fraction
    become the validation and test sides. ``fractions``: ``validation`` and ``test``."""
    smallest = min(fractions["validation"], fractions["test"])
    n_folds = max(3, round(1 / smallest))
    n_groups = groups.nunique()
    if n_groups < n_folds:
        raise CollectionError(
            f"ingestion.group_by={group_by!r}: {n_groups} groups cannot be split "
            f"{fractions} with every group on one side (at least {n_folds} needed); add "
            "tracks, group by something finer, or provide ingestion.split_file."
        )
    folder = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.empty(len(genres), dtype=int)
    for number, (_, held) in enumerate(
        folder.split(np.zeros(len(genres)), genres.to_numpy(), groups.to_numpy())
    ):
        fold[held] = number
    n_val = max(1, round(fractions["validation"] * n_folds))
    test_folds = max(1, round(fractions["test"] * n_folds))
    split = np.full(len(genres), "training", dtype=object)
    split[fold < test_folds] = "test"
    split[(fold >= test_folds) & (fold < test_folds + n_val)] = "validation"
    return split
