"""Music genre classification on FMA, as a Kedro project."""

import os

# TensorFlow's C++ start-up notices (CUDA absent, oneDNN, CPU flags) drown Kedro's own log on
# every run; keep warnings and errors only unless the user asks for more.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# librosa's numba cache lives in a folder of the project's own, written under a lock
# (music_genre.infra.numba_cache explains why); set before anything imports numba.
if not os.environ.get("NUMBA_CACHE_DIR"):
    from music_genre.infra.numba_cache import default_cache_dir

    os.environ["NUMBA_CACHE_DIR"] = default_cache_dir()

# ... and the notices TensorFlow writes from C++ on import, which that variable cannot reach.
from music_genre.infra import quiet_imports  # noqa: E402

quiet_imports.install()

# Artefacts pickled before the layered layout (issue #22) name old module paths.
from music_genre import _legacy_paths  # noqa: E402

_legacy_paths.install()

__version__ = "0.1.0"
