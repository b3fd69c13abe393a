"""A Keras model in one ``.keras`` file, written atomically.

``tensorflow.TensorFlowModelDataset`` copies its temporary file onto the final path, so an
interrupted save leaves a truncated model under the final name, which ``kedro run
--only-missing-outputs`` would then take as done. This dataset saves beside the target and
renames in one step.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError


class KerasModelDataset(AbstractDataset[Any, Any]):
    """Loads and saves a ``keras.Model`` as a ``.keras`` file (custom layers must be registered
    with ``keras.saving.register_keras_serializable``: the project's own are, on load)."""

    def __init__(
        self,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(filepath)
        if self._filepath.suffix != ".keras":
            raise DatasetError(f"KerasModelDataset needs a '.keras' file path, got '{filepath}'")
        self._load_args = dict(load_args or {})
        self.metadata = metadata

    def load(self) -> Any:
        import keras

        # registers the project's custom layers (StudyImageScaling), so a pipeline that only
        # loads a trained CNN (serving, fusion) works without having imported the cnn pipeline
        import music_genre.cnn_model  # noqa: F401

        if not self._filepath.is_file():
            raise DatasetError(
                f"Model file {self._filepath} not found: run the pipeline that trains it"
            )
        return keras.models.load_model(self._filepath, **self._load_args)

    def save(self, data: Any) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        # Keras insists on the .keras suffix, so the temporary file gets one too.
        fd, tmp = tempfile.mkstemp(
            dir=self._filepath.parent, prefix=f".{self._filepath.stem}.", suffix=".tmp.keras"
        )
        os.close(fd)
        try:
            data.save(tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it private; give a normal file's mode
            os.replace(tmp, self._filepath)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "load_args": self._load_args}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
