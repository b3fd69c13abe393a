"""The transfer predictor: spectrogram (or audio, for musicnn) -> backbone cut-level features ->
the fitted scaler/PCA/classifier."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from music_genre.models.probabilities import classifier_probabilities

from .predictors import PredictionError

logger = logging.getLogger(__name__)


@dataclass
class TransferPredictor:
    """Spectrogram -> backbone cut-level features -> the fitted scaler/PCA/classifier.

    A backbone with its own audio front end (musicnn, ``input_kind: audio`` in the bundle)
    embeds each window of the audio file directly, with the window length and padding the
    training features used."""

    bundle: Mapping[str, Any]
    spectrogram_settings: Mapping[str, Any]
    label: str = "transfer"
    # The ONNX export of the backbone's cut-level network (music_genre.models.backbones.
    # export_cut_network): used when it records this bundle's backbone, weights and cut level,
    # else refused (logged) and the Keras backbone is built.
    backbone: Any = None
    _extractor: Any = field(default=None, init=False, repr=False)

    @property
    def class_names(self) -> list[str]:
        return list(self.bundle["class_names"])

    @property
    def reads_audio(self) -> bool:
        return self.bundle.get("input_kind", "spectrogram") == "audio"

    def window_s(self) -> float:
        if self.reads_audio:
            return float(self.bundle["audio_duration_s"])
        return float(self.spectrogram_settings["duration_s"])

    @property
    def runtime(self) -> str:
        return "keras" if self.exported_backbone() is None else "onnxruntime"

    def exported_backbone(self) -> Any:
        """The exported backbone when it belongs to this model, else None (the reason logged,
        once: the export is dropped)."""
        if self.backbone is None:
            return None
        from music_genre.models.backbones import check_exported_cut_network
        from music_genre.models.inference import ExportedModelError

        try:
            return check_exported_cut_network(self.backbone, self.bundle)
        except ExportedModelError as exc:
            logger.warning(
                "%s: using the Keras backbone instead (same features, TensorFlow start-up)", exc
            )
            self.backbone = None
            return None

    def extractor(self) -> Any:
        # Built on first use only: the served model pickles without the Keras backbone.
        if self._extractor is None:
            from music_genre.models.backbones import (
                AudioEmbeddingExtractor,
                AudioWindow,
                CutLevelFeatureExtractor,
                ImageSettings,
                WeightsChoice,
                get_backbone,
            )

            choice = WeightsChoice.from_label(
                str(self.bundle["weights"]), seed=self.bundle["random_seed"]
            )
            if choice.fingerprint() != self.bundle["weights_fingerprint"]:
                raise PredictionError(
                    f"the {self.bundle['backbone']} weights now resolve to "
                    f"{choice.fingerprint()}, but the classifier was trained on features of "
                    f"{self.bundle['weights_fingerprint']}: retrain the transfer pipeline"
                )
            spec = get_backbone(self.bundle["backbone"])
            if self.reads_audio:
                self._extractor = AudioEmbeddingExtractor(
                    spec,
                    choice,
                    (self.bundle["cut_level"],),
                    AudioWindow(
                        duration_s=float(self.bundle["audio_duration_s"]),
                        pad_mode=str(self.bundle.get("audio_pad_mode") or "repeat"),
                    ),
                    network=self.exported_backbone(),
                )
            else:
                self._extractor = CutLevelFeatureExtractor(
                    spec,
                    choice,
                    (self.bundle["cut_level"],),
                    ImageSettings(interpolation=self.bundle["image_interpolation"]),
                    network=self.exported_backbone(),
                )
        return self._extractor

    def features(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        """The backbone features of each window, computed as the training features were."""
        from music_genre.audio.spectrograms import spectrogram_from_file

        if self.reads_audio:
            return self.extractor()(path, offsets)[self.bundle["cut_level"]]
        specs = [
            spectrogram_from_file(path, {**self.spectrogram_settings, "offset_s": offset})
            for offset in offsets
        ]
        return self.extractor()(specs)[self.bundle["cut_level"]]

    def window_probabilities(self, path: str, offsets: Sequence[float]) -> np.ndarray:
        return classifier_probabilities(self.bundle["model"], self.features(path, offsets))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_extractor"] = None
        return state
