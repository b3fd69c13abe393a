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
   worker, any number of them, any number of concurrent ``kedro run``) calls :func:`prepare`.
   It takes an exclusive lock on a file in the cache folder and, holding it, runs the project's
   feature and spectrogram code on a short generated clip: that compiles (or loads) every
   numba function those code paths use, with the argument types they use. So compilation and
   cache writes happen one process at a time, and later calls only load finished pairs.
"""

from __future__ import annotations

import fcntl
import os
import threading
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


def _warm_up() -> None:
    """Run the project's librosa code paths once on a short clip, tone and silence (silence
    takes other branches in tuning estimation)."""
    import numpy as np

    from music_genre.audio.features import compute_features
    from music_genre.audio.spectrograms import STUDY_SETTINGS, log_mel_spectrogram

    rate = 22050
    time = np.arange(rate, dtype=np.float32) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * time)).astype(np.float32)
    for signal in (tone, np.zeros_like(tone)):
        compute_features(signal, rate)
        log_mel_spectrogram(signal, STUDY_SETTINGS)


def prepare() -> None:
    """Compile or load librosa's numba functions under an exclusive file lock, once per
    process; cheap after the first call."""
    global _state
    if _state != "cold":  # ready, or the warm-up's own calls into the code it warms
        return
    with _thread_lock:
        if _state != "cold":
            return
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / LOCK_FILE, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            _state = "warming"
            try:
                _warm_up()
            except BaseException:
                _state = "cold"
                raise
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        _state = "ready"
