"""Building a predictor from the trained models (``build_predictor``) and replacing its Keras
networks by their ONNX exports (``export_networks``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from music_genre.contracts import FUSION, MODEL_KINDS, genre_labels
from music_genre.models.backbones import export_transfer_backbone
from music_genre.models.inference import OnnxModel

from .fusion import FusionPredictor, Predictor
from .predictors import CnnPredictor, HandcraftedPredictor, PredictionError
from .transfer import TransferPredictor

logger = logging.getLogger(__name__)


def load_network(load: Any, name: str, exported: bool = True) -> Any:
    """The exported model ``<name>_onnx`` (run without TensorFlow) when ``exported`` and it is
    valid, else the Keras model ``name``: the same trained model either way."""
    if exported:
        try:
            return load(f"{name}_onnx")
        except Exception as exc:  # noqa: BLE001 - the reason is logged, the Keras model is used
            logger.warning(
                "%s: using the Keras model %s instead (same predictions, TensorFlow start-up)",
                exc,
                name,
            )
    return load(name)


def load_exported_backbone(load: Any) -> Any:
    """The transfer backbone's export ``transfer_best_backbone``, or None (the reason logged):
    TransferPredictor then builds the Keras backbone."""
    try:
        return load("transfer_best_backbone")
    except Exception as exc:  # noqa: BLE001 - the reason is logged, the Keras backbone is used
        logger.warning(
            "%s: using the Keras backbone instead (same features, TensorFlow start-up)", exc
        )
        return None


def handcrafted_audio(
    load: Any, handcrafted_params: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The saved handcrafted model's record (``handcrafted_model_info``; None for a model saved
    before it existed) and its feature audio record: the recorded one, or for an older model the
    one its ``handcrafted.source`` implies (the first when it lists several)."""
    from music_genre.audio.training_audio import feature_audio_record, handcrafted_sources

    try:
        info = load("handcrafted_model_info")
    except Exception as exc:  # noqa: BLE001 - an older project without the entry
        logger.info("no handcrafted model record (%s): handcrafted.source decides", exc)
        info = None
    if info and info.get("features_over"):
        return info, dict(info)
    source = handcrafted_sources(handcrafted_params)[0]
    audio = feature_audio_record(source, handcrafted_params.get("extraction"))
    logger.info(
        "the handcrafted model has no record of its training audio (saved before it was "
        "recorded): treated as handcrafted.source=%s implies (%s)",
        source,
        audio["features_over"],
    )
    return info, audio


def build_predictor(
    kind: str, load: Any, params: Mapping[str, Any], exported: bool = True
) -> Predictor:
    """A predictor of ``kind`` from trained artifacts; ``load(name)`` reads a catalog entry.
    ``exported``: run the CNN and the MLP from their ONNX exports where valid."""
    from music_genre.audio.spectrograms import spectrogram_settings

    if kind == "cnn":
        info = load("cnn_best_model_info")
        return CnnPredictor(
            model=load_network(load, "cnn_best_model", exported),
            class_names=list(info["class_names"]),
            spectrogram_settings=spectrogram_settings(params["spectrogram"]),
            label=f"cnn ({info.get('variant', 'best variant')})",
        )
    if kind == "transfer":
        bundle = load("transfer_best_model")
        return TransferPredictor(
            bundle=bundle,
            backbone=load_exported_backbone(load) if exported else None,
            spectrogram_settings=spectrogram_settings(params["spectrogram"]),
            label=f"transfer ({bundle['backbone']} {bundle['cut_level']} "
            f"{bundle['classifier']}, {bundle['weights']} weights)",
        )
    if kind == "handcrafted":
        info, audio = handcrafted_audio(load, params["handcrafted"])
        settings = {**params["handcrafted"]["extraction"], **audio.get("settings", {})}
        names = (info or {}).get("class_names") or list(genre_labels(load("tracks")["genre"]))
        return HandcraftedPredictor(
            model=load_network(load, "handcrafted_mlp", exported),
            scaler=load("handcrafted_scaler"),
            class_names=list(names),
            feature_settings=settings,
            audio=audio,
        )
    if kind == FUSION:
        bundle = load("fusion_model")
        members = [build_predictor(member, load, params, exported) for member in bundle["members"]]
        recorded = bundle.get("member_audio", {}).get("handcrafted")
        for member in members:
            if (
                isinstance(member, HandcraftedPredictor)
                and recorded
                and recorded.get("features_over") != member.features_over
            ):
                raise PredictionError(
                    f"fusion: its handcrafted member was fit with features over "
                    f"{recorded.get('features_over')}, the saved handcrafted model's are over "
                    f"{member.features_over}: run the fusion pipeline again"
                )
            if list(member.class_names) != list(bundle["class_names"]):
                raise PredictionError(
                    f"fusion: {member.label} predicts {member.class_names}, the fusion model "
                    f"was fit on {bundle['class_names']}: run the fusion pipeline again"
                )
        return FusionPredictor(
            bundle=bundle,
            members=members,
            label=f"fusion ({bundle['method']} of {'+'.join(bundle['members'])})",
        )
    raise PredictionError(f"unknown model {kind!r}: use one of {MODEL_KINDS}, {FUSION} or best")


def export_networks(predictor: Predictor) -> Predictor:
    """The predictor with its Keras networks (CNN, MLP, the transfer backbone's cut level;
    fusion members too) replaced by their ONNX exports, each checked against the Keras model
    (music_genre.models.inference.export_onnx): the served model then runs without TensorFlow. A
    network whose export does not match stays Keras, with a logged warning."""
    from music_genre.models.inference import ExportedModelError, export_onnx

    if isinstance(predictor, FusionPredictor):
        predictor.members = [export_networks(member) for member in predictor.members]
    elif isinstance(predictor, TransferPredictor) and predictor.backbone is None:
        try:
            predictor.backbone = export_transfer_backbone(predictor.bundle)
        except ExportedModelError as exc:
            logger.warning(
                "%s: %s keeps its Keras backbone (slower start-up)", exc, predictor.label
            )
        predictor._extractor = None
    elif isinstance(predictor, CnnPredictor | HandcraftedPredictor) and not isinstance(
        predictor.model, OnnxModel
    ):
        try:
            predictor.model = export_onnx(predictor.model)
        except ExportedModelError as exc:
            logger.warning("%s: %s keeps its Keras model (slower start-up)", exc, predictor.label)
        predictor._network = None
    return predictor
