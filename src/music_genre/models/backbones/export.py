"""The network of one cut level, exported to ONNX for prediction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .images import cut_level_model
from .registry import BackboneSpec, CutLevelError, get_backbone
from .weights import WeightsChoice, build_backbone

if TYPE_CHECKING:  # keras is imported lazily: importing this module must stay cheap
    import keras

    from music_genre.models.inference import OnnxModel

# What an exported cut-level network is: recorded in the export, compared with the transfer
# model it is used with (features of other weights or another cut would mean nothing to it).
EXPORT_IDENTITY = ("backbone", "weights_fingerprint", "cut_level")


def cut_network(spec: BackboneSpec, weights: WeightsChoice, cut_level: str) -> keras.Model:
    """The backbone up to one cut level as a single-output model (what prediction runs)."""
    import keras

    model = build_backbone(spec, weights)
    if spec.input_kind == "audio":
        if cut_level not in spec.cut_levels:
            raise CutLevelError(f"{cut_level!r} is not an output of {spec.name}")
        output = model.output[cut_level]  # musicnn: one output per cut level
    else:
        output = cut_level_model(model, (cut_level,), spec.name).output
    return keras.Model(model.input, output, name=f"{spec.name}_{cut_level}")


def export_cut_network(spec: BackboneSpec, weights: WeightsChoice, cut_level: str) -> Any:
    """:func:`cut_network` exported to ONNX and checked against Keras
    (:func:`music_genre.models.inference.export_onnx`), recording :data:`EXPORT_IDENTITY`."""
    from music_genre.models.inference import export_onnx

    # musicnn reads patches of a fixed number of frames; the image backbones' inputs are fixed
    shape = spec.input_size if spec.input_kind == "audio" else None
    return export_onnx(
        cut_network(spec, weights, cut_level),
        {
            "backbone": spec.name,
            "weights": weights.label,
            "weights_fingerprint": weights.fingerprint(),
            "cut_level": cut_level,
        },
        input_shape=shape,
    )


def check_exported_cut_network(exported: Any, expected: Mapping[str, Any]) -> Any:
    """``exported`` when it records the same :data:`EXPORT_IDENTITY` as ``expected`` (a
    transfer model's bundle), else ExportedModelError naming what differs."""
    from music_genre.models.inference import ExportedModelError

    recorded = getattr(exported, "metadata", {})
    differs = [
        f"{key} {recorded.get(key)!r} (the model's: {expected.get(key)!r})"
        for key in EXPORT_IDENTITY
        if recorded.get(key) != str(expected.get(key))
    ]
    if differs:
        raise ExportedModelError(
            f"the exported backbone {getattr(exported, 'source', '')} does not belong to this "
            f"transfer model: {', '.join(differs)}"
        )
    return exported


def export_transfer_backbone(bundle: Mapping[str, Any]) -> OnnxModel:
    """The cut-level network a transfer model's features come from (its backbone, weights and
    cut level), exported to ONNX and checked against Keras; ExportedModelError when the
    weights no longer resolve to those the classifier was trained on, or the export does not
    match."""
    from music_genre.models.inference import ExportedModelError

    choice = WeightsChoice.from_label(str(bundle["weights"]), seed=bundle["random_seed"])
    if choice.fingerprint() != bundle["weights_fingerprint"]:
        raise ExportedModelError(
            f"the {bundle['backbone']} weights now resolve to {choice.fingerprint()}, but the "
            f"classifier was trained on features of {bundle['weights_fingerprint']}: not exported"
        )
    return export_cut_network(get_backbone(bundle["backbone"]), choice, bundle["cut_level"])
