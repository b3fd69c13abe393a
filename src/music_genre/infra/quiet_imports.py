"""TensorFlow's import without its start-up notices.

Importing TensorFlow 2.21 writes, from C++ and before its logging is configured (so
``TF_CPP_MIN_LOG_LEVEL`` cannot silence them), notices such as "oneDNN custom operations are
on" and "Could not find cuda drivers on your machine, GPU will not be used" to the process's
standard error, twice, in every process that imports it: screens of noise above the project's
own messages in every ``kedro run``, test and prediction. This module wraps the import of
``tensorflow`` (whoever imports it first: Keras, keras-tuner, the project) so that standard
error is captured at the file-descriptor level while the module executes; afterwards every
captured line that is not one of those known notices is written back, so real warnings and
errors still show.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from typing import Any

# Notices TensorFlow prints on every import; nothing in them is actionable for this project
# (the device actually used is logged by the training code).
NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|oneDNN custom operations are on"
    r"|cudart_stub\.cc.*Could not find cuda drivers"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|rebuild TensorFlow with the appropriate compiler flags"
)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        sys.stderr.flush()
        with tempfile.TemporaryFile() as captured:
            saved = os.dup(2)
            os.dup2(captured.fileno(), 2)
            try:
                self._loader.exec_module(module)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                text = captured.read().decode(errors="replace")
                kept = [
                    line for line in text.splitlines() if line.strip() and not NOISE.search(line)
                ]
                if kept:
                    sys.stderr.write("\n".join(kept) + "\n")


class _QuietTensorflowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` through the other finders, then executes it quietly."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tensorflow":
            return None
        for finder in sys.meta_path:
            # skip every finder of this kind: the module may have been loaded twice (a
            # reloading notebook kernel), leaving two instances that would call each other
            if _is_quiet_finder(finder) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def _is_quiet_finder(finder: Any) -> bool:
    return type(finder).__name__ == _QuietTensorflowFinder.__name__


def install() -> None:
    """Wrap TensorFlow's first import in this process (no effect once it is imported)."""
    if os.environ.get("MUSIC_GENRE_TF_NOTICES") == "1":  # to see them, e.g. when debugging
        return
    if "tensorflow" in sys.modules or any(_is_quiet_finder(f) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorflowFinder())
