"""Atomic file writes: an interrupted run never leaves a half-written file under a final name.

The project's one implementation of it (issue #22): :func:`atomic_path` (a temporary path
beside the target, renamed over it on success), :func:`atomic_file` (the same, as an open
file) and :func:`atomic_folder` (a staging folder that replaces a folder). The Kedro datasets (``music_genre.datasets.atomic_files``, ``keras_model``,
``mlflow_runs``), the stores (:mod:`music_genre.infra.storage`), the ONNX exports and the demo
data all write through them. (The FMA download renames its verified ``.part`` file itself: a
resumable download keeps its partial file between runs.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    The temporary file lives in the same folder, so ``os.replace`` is an atomic rename; on an
    exception it is removed and ``path`` keeps its previous content (or stays absent).
    ``suffix`` ends the temporary file's name (a writer that insists on one, as Keras on
    ``.keras``, gets it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_file(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """An open file to fill that appears under ``path`` only complete (:func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; on success it replaces ``path`` (renamed
    aside, then removed), so a reader finds the old folder or the complete new one; on an
    exception the staging folder is removed and ``path`` stays as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    staging.chmod(0o777 & ~_umask())  # mkdtemp's 0700: the mode a plain mkdir gives
    old = path.with_name(f".{path.name}.old")
    try:
        yield staging
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            path.rename(old)
        staging.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
