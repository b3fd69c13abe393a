"""A numba cache that concurrent processes cannot poison.

librosa compiles parts of itself with numba and caches the machine code on disk
(``cache=True``). numba's ``@guvectorize`` caching is not safe between processes (numba issue
#10128, librosa issue #1998): processes that compile the same function at once can leave an
index file and a data file written by different processes, and every later process that loads
that pair segfaults. The project's worker pools start several processes that all make their
first librosa call at the same moment, which is exactly that race.

The mechanism:

1. The project keeps its own cache folder (``NUMBA_CACHE_DIR``, set by ``music_genre/__init__``
   before anything imports numba, unless the user set it): other programs that use librosa
   without this lock cannot write into it.
2. Before its first librosa computation, every process of the project (the parent and each
   worker, any number of them, any number of concurrent ``kedro run``) calls :func:`prepare`
   with a warm-up (:func:`music_genre.audio.features.warm_up_librosa`). It takes an exclusive
   lock on a file in the cache folder (``filelock``: any platform) and, holding it, runs the
   warm-up: the project's feature and spectrogram code on a short generated clip: that compiles (or loads) every
   numba function those code paths use, with the argument types they use. So compilation and
   cache writes happen one process at a time, and later calls only load finished pairs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

_state = "cold"  # -> "warming" (this process is compiling) -> "ready"
_thread_lock = threading.RLock()
LOCK_FILE = ".music_genre.lock"


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/music-genre/numba`` (``~/.cache/...``): per user, shared by clones,
    so a new clone of the project does not compile librosa again."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "music-genre", "numba")


def cache_dir() -> Path:
    return Path(os.environ.get("NUMBA_CACHE_DIR") or default_cache_dir())


def prepare(warm_up: Callable[[], None]) -> None:
    """Run ``warm_up`` (it compiles or loads librosa's numba functions) under an exclusive file
    lock, once per process; cheap after the first call."""
    global _state
    if _state != "cold":  # ready, or the warm-up's own calls into the code it warms
        return
    with _thread_lock:
        if _state != "cold":
            return
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock  # imported here: `import music_genre` stays light

        with FileLock(folder / LOCK_FILE):
            _state = "warming"
            try:
                warm_up()
            except BaseException:
                _state = "cold"
                raise
        _state = "ready"
