"""Safe, atomic extraction of a zip archive (``extract_zip``) and its ``.extracted-<sha1>`` marker."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from .archives import _EXTRACT_TMP_PREFIX, _MARKER_PREFIX, UnsafeArchiveError, _GiB

logger = logging.getLogger(__name__)


def _check_member(name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(
            f"refusing zip entry {name!r}: it points outside the extraction folder"
        )


def extract_zip(archive: Path, dest_dir: Path) -> list[Path]:
    """Extract ``archive`` into ``dest_dir`` and return its top-level paths there.

    Everything is unpacked into a temporary folder inside ``dest_dir`` (same
    filesystem, so the final moves are atomic renames); only then are the
    top-level entries moved into place. An existing entry of the same name is
    replaced. Entries with ``..``, absolute paths or drive letters are refused
    before anything is written.
    """
    archive = Path(archive)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)

    with zipfile.ZipFile(archive) as zf:
        members = zf.namelist()
        for name in members:
            _check_member(name)
        tmp = Path(tempfile.mkdtemp(prefix=_EXTRACT_TMP_PREFIX, dir=dest_dir))
        try:
            logger.info("Extracting %s (%d entries) into %s", archive.name, len(members), dest_dir)
            zf.extractall(tmp)
            placed: list[Path] = []
            for entry in sorted(tmp.iterdir()):
                target = dest_dir / entry.name
                if target.exists() or target.is_symlink():
                    # os.replace cannot overwrite a non-empty folder: move the old one
                    # into tmp (deleted below), then rename the new one into place.
                    logger.info("Replacing existing %s", target)
                    os.replace(target, tmp / f"{_EXTRACT_TMP_PREFIX}old-{entry.name}")
                os.replace(entry, target)
                placed.append(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return placed


def _marker(folder: Path, sha1: str) -> Path:
    return folder / f"{_MARKER_PREFIX}{sha1.lower()}"


def _is_extracted(folder: Path, sha1: str) -> bool:
    return _marker(folder, sha1).is_file()


def _remove_stale_temp_dirs(dest_dir: Path) -> None:
    # Left behind only if a previous run was killed mid-extraction; they can be large.
    for stale in dest_dir.glob(f"{_EXTRACT_TMP_PREFIX}*"):
        if stale.is_dir():
            logger.info("Removing leftover temporary folder %s", stale)
            shutil.rmtree(stale, ignore_errors=True)


def _warn_if_low_disk(dest_dir: Path, needed: int) -> None:
    try:
        free = shutil.disk_usage(dest_dir).free
    except OSError:
        return
    if free < needed:
        logger.warning(
            "Only %.1f GiB free in %s, about %.1f GiB are needed (archives + extracted files)",
            free / _GiB,
            dest_dir,
            needed / _GiB,
        )
