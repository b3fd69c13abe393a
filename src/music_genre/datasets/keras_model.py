"""A Keras model in one ``.keras`` file, written atomically.

``tensorflow.TensorFlowModelDataset`` copies its temporary file onto the final path, so an
interrupted save leaves a truncated model under the final name, which ``kedro run
--only-missing-outputs`` would then take as done. This dataset saves beside the target and
renames in one step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from music_genre.infra.atomic import atomic_path


class KerasModelDataset(AbstractDataset[Any, Any]):
    """Loads and saves a ``keras.Model`` as a ``.keras`` file (custom layers must be registered
    with ``keras.saving.register_keras_serializable``: the project's own are, on load)."""

    def __init__(
        self,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        onnx_export: bool = False,
    ) -> None:
        self._filepath = Path(filepath)
        self._onnx_export = bool(onnx_export)
        if self._filepath.suffix != ".keras":
            raise DatasetError(f"KerasModelDataset needs a '.keras' file path, got '{filepath}'")
        self._load_args = dict(load_args or {})
        self.metadata = metadata

    def load(self) -> Any:
        import keras

        # registers the project's custom layers (StudyImageScaling), so a pipeline that only
        # loads a trained CNN (serving, fusion) works without having imported the cnn pipeline
        import music_genre.models.cnn  # noqa: F401

        if not self._filepath.is_file():
            raise DatasetError(
                f"Model file {self._filepath} not found: run the pipeline that trains it"
            )
        return keras.models.load_model(self._filepath, **self._load_args)

    def save(self, data: Any) -> None:
        # Keras insists on the .keras suffix, so the temporary file gets one too.
        with atomic_path(self._filepath, suffix=".tmp.keras") as tmp:
            data.save(str(tmp))
        if self._onnx_export:
            self._save_onnx(data)

    def _save_onnx(self, model: Any) -> None:
        from music_genre.models.inference import (
            KERAS_SHA256_KEY,
            export_onnx,
            file_sha256,
            save_onnx,
        )

        onnx_path = self._filepath.with_suffix(".onnx")
        # an export of the previous model must not outlive it, even if this export fails
        onnx_path.unlink(missing_ok=True)
        exported = export_onnx(
            model,
            {KERAS_SHA256_KEY: file_sha256(self._filepath), "keras_file": self._filepath.name},
        )
        save_onnx(exported, onnx_path)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "load_args": self._load_args,
            "onnx_export": self._onnx_export,
        }


class OnnxModelDataset(AbstractDataset[Any, Any]):
    """An ONNX export (:class:`music_genre.models.inference.OnnxModel`, loaded without TensorFlow).

    With ``keras_filepath``: the export that ``KerasModelDataset(onnx_export=True)`` wrote
    beside that ``.keras`` file; read only, and a missing export, or one made from another
    ``.keras`` file, is a DatasetError whose message says so. Without: an export a node made
    (the transfer backbone's cut level), saved atomically; its user checks what it records."""

    def __init__(
        self,
        filepath: str,
        keras_filepath: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(filepath)
        self._keras_filepath = Path(keras_filepath) if keras_filepath else None
        self.metadata = metadata

    def load(self) -> Any:
        from music_genre.models.inference import ExportedModelError, OnnxModel, load_exported

        if self._keras_filepath is None:
            if not self._filepath.is_file():
                raise DatasetError(
                    f"no exported model at {self._filepath}: run the pipeline that writes it"
                )
            return OnnxModel(self._filepath.read_bytes(), source=str(self._filepath))
        try:
            return load_exported(self._filepath, self._keras_filepath)
        except ExportedModelError as exc:
            raise DatasetError(
                f"{exc}: saving {self._keras_filepath.name} again (its pipeline) exports it"
            ) from exc

    def save(self, data: Any) -> None:
        if self._keras_filepath is not None:
            raise DatasetError(
                f"{self._filepath} is written by the KerasModelDataset of "
                f"{self._keras_filepath} (onnx_export: true), not saved on its own"
            )
        from music_genre.models.inference import save_onnx

        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        save_onnx(data, self._filepath)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "keras_filepath": str(self._keras_filepath)}
