"""What audio each pipeline's model was trained on, said in one place.

FMA's ``features.csv`` was computed by FMA from the **full-length tracks** (mdeff/fma issue #8),
while fma_small's files are 30-s clips and the spectrogram pipelines read the first 29.7 s of
each file. A model trained on one kind of audio must not be compared with, or fed, the other
kind silently: the results tables, the summary, MLflow and the prediction command all take their
wording from here.

A handcrafted model's *feature audio record* (``handcrafted_model_info``, and inside a fusion
model) says what its features were computed over:

- ``whole_track``: FMA's ``features.csv`` (``handcrafted.source: fma_csv``), FMA's full-length
  tracks. Prediction computes the features over the whole file it is given and warns when that
  file is short enough to be a clip (:data:`WHOLE_TRACK_MIN_S`).
- ``whole_file``: extracted from each file of the collection as it is (the 30-s clips on
  fma_small); ``median_training_s`` is the median length of the training files. Prediction
  computes them over the whole file, or over consecutive windows of that length for a file of
  at least two such windows.
- ``window``: extracted from ``duration_s`` seconds from ``offset_s`` of each file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

WHOLE_TRACK = "whole_track"
WHOLE_FILE = "whole_file"
WINDOW = "window"
FEATURES_OVER = (WHOLE_TRACK, WHOLE_FILE, WINDOW)
# A file shorter than this given to a whole-track model is most likely a clip (fma_small's are
# 30 s): its features come from another distribution than FMA's full-length tracks.
WHOLE_TRACK_MIN_S = 60.0
DEFAULT_CLIP_S = 30.0  # window of a clip model whose training files' length is unknown
SOURCES = ("fma_csv", "extract")


def handcrafted_sources(params: Mapping[str, Any]) -> list[str]:
    """``handcrafted.source`` as a list: one source, or several (the first is the saved model,
    the others are comparison rows). Unknown sources raise ``ValueError``."""
    source = params.get("source")
    sources: list[str | None]
    if isinstance(source, str):  # "fma_csv+extract": the spelling --params allows (no commas)
        sources = list(source.split("+"))
    else:
        sources = [source] if source is None else list(source)
    bad = [s for s in sources if s not in SOURCES]
    if not sources or bad or len(set(sources)) != len(sources):
        raise ValueError(
            f"handcrafted.source={source!r}: use 'fma_csv' (FMA's precomputed "
            "fma_metadata/features.csv, as the study: whole tracks), 'extract' (compute them "
            "from the collection's audio files: the clips on fma_small), or both, the first "
            "being the saved model: [fma_csv, extract] in YAML, "
            '--params "handcrafted.source=fma_csv+extract" on the command line.'
        )
    return [s for s in sources if s is not None]  # all of them: None is no source (above)


def feature_audio_record(
    source: str,
    extraction: Mapping[str, Any] | None = None,
    durations_s: Sequence[float] | None = None,
) -> dict[str, Any]:
    """What a handcrafted model's features were computed over (see the module docstring).

    ``durations_s``: the lengths of the files the features were extracted from (training
    split), for ``whole_file``; absent (an old model) the window falls back to 30 s."""
    from music_genre.audio.features import FMA_SETTINGS

    settings = {**FMA_SETTINGS, **dict(extraction or {})}
    settings = {k: settings[k] for k in FMA_SETTINGS}
    if source == "fma_csv":
        # FMA's own recipe on the whole file (what features.csv holds, for whole tracks).
        return {
            "source": source,
            "features_over": WHOLE_TRACK,
            "offset_s": 0.0,
            "duration_s": None,
            "median_training_s": None,
            "settings": dict(FMA_SETTINGS),
        }
    duration, offset = settings.get("duration_s"), float(settings.get("offset_s") or 0.0)
    median = None
    if durations_s is not None and len(durations_s):
        median = float(np.median(np.asarray(durations_s, dtype=np.float64)))
        if duration:
            median = min(median, float(duration))
    return {
        "source": source,
        "features_over": WINDOW if duration else WHOLE_FILE,
        "offset_s": offset,
        "duration_s": None if duration is None else float(duration),
        "median_training_s": median,
        "settings": settings,
    }


def short_label(record: Mapping[str, Any]) -> str:
    """A few words for tables: ``whole track (features.csv)``, ``whole file (~30.0 s)``."""
    kind = record.get("features_over")
    if kind == WHOLE_TRACK:
        return "whole track (features.csv)"
    if kind == WINDOW:
        start = float(record.get("offset_s") or 0.0)
        return f"{float(record['duration_s']):.2f} s from {start:g} s of each file"
    median = record.get("median_training_s")
    return f"whole file (~{median:.1f} s)" if median else "whole file"


def describe_record(record: Mapping[str, Any]) -> str:
    """One sentence for the summary, MLflow and the prediction output."""
    kind = record.get("features_over")
    if kind == WHOLE_TRACK:
        return (
            "FMA's features.csv: 518 features computed by FMA over the full-length tracks "
            "(not the 30-s clips of fma_small)"
        )
    if kind == WINDOW:
        return (
            f"518 features extracted from {float(record['duration_s']):.2f} s of each file "
            f"(from {float(record.get('offset_s') or 0.0):g} s)"
        )
    median = record.get("median_training_s")
    length = f"; median {median:.2f} s" if median else ""
    return (
        "518 features extracted from each whole file of the collection (the clips, on "
        f"fma_small{length})"
    )


def record_from_results(results: pd.DataFrame | None) -> dict[str, str]:
    """source -> training audio description, from a handcrafted results table's columns."""
    if results is None or "training_audio" not in results:
        return {}
    pairs = results[["source", "training_audio"]].dropna().drop_duplicates("source")
    return dict(zip(pairs["source"], pairs["training_audio"], strict=True))


def spectrogram_audio(spectrogram: Mapping[str, Any]) -> str:
    """What the CNN saw: the log-mel spectrogram of one window of each file."""
    return (
        f"log-mel spectrogram of the first {float(spectrogram['duration_s']):.2f} s of each file "
        f"at {int(spectrogram['sample_rate'])} Hz (shorter files padded: "
        f"{spectrogram.get('pad_mode', 'repeat')})"
    )


def transfer_audio(transfer: Mapping[str, Any], spectrogram: Mapping[str, Any]) -> str:
    """What the transfer models saw: image backbones the CNN's spectrogram, musicnn its own
    front end on the first ``transfer.audio.duration_s``."""
    text = f"image backbones: the {spectrogram_audio(spectrogram)}"
    backbones = {e.get("backbone") for e in transfer.get("experiments", [])}
    if "musicnn" in backbones:
        audio = transfer.get("audio", {})
        text += (
            f"; musicnn: its own front end on the first {float(audio['duration_s']):.2f} s "
            "of each file"
        )
    return text


def pipeline_audio(
    params: Mapping[str, Any], handcrafted_results: pd.DataFrame | None = None
) -> dict[str, str]:
    """pipeline -> what audio its models were trained on. Handcrafted: from its results table
    (what the run that made them used) when it has the columns, else from the parameters."""
    out: dict[str, str] = {}
    handcrafted = params.get("handcrafted")
    recorded = record_from_results(handcrafted_results)
    if recorded:
        out["handcrafted"] = "; ".join(f"{s}: {text}" for s, text in recorded.items())
    elif handcrafted:
        try:
            sources = handcrafted_sources(handcrafted)
        except ValueError:
            sources = []
        out["handcrafted"] = "; ".join(
            f"{s}: {describe_record(feature_audio_record(s, handcrafted.get('extraction')))}"
            for s in sources
        )
    spectrogram = params.get("spectrogram")
    if spectrogram:
        out["cnn"] = spectrogram_audio(spectrogram)
        if params.get("transfer"):
            out["transfer"] = transfer_audio(params["transfer"], spectrogram)
    out["fusion"] = "each member's own (above): the probabilities of the three best models"
    return out


def short_pipeline_audio(pipeline: str, params: Mapping[str, Any], row: Any = None) -> str:
    """A few words for the terminal table: what the pipeline's best model was trained on.
    ``row``: its results row (the handcrafted one carries ``audio``)."""
    if pipeline == "handcrafted":
        label = None if row is None else row.get("audio")
        if isinstance(label, str) and label:
            return label
        try:
            source = handcrafted_sources(params.get("handcrafted", {}))[0]
        except ValueError:
            return "?"
        extraction = params.get("handcrafted", {}).get("extraction")
        return short_label(feature_audio_record(source, extraction))
    spectrogram = params.get("spectrogram")
    if pipeline in ("cnn", "transfer") and spectrogram:
        return f"first {float(spectrogram['duration_s']):.2f} s of each file"
    if pipeline == "fusion":
        return "each member's own"
    return "?"


def selectable(table: pd.DataFrame) -> pd.DataFrame:
    """The rows a pipeline's best model may be chosen from: not the comparison rows of a
    further ``handcrafted.source`` (their models are not saved)."""
    if "comparison" not in table:
        return table
    flags = table["comparison"].map(lambda v: str(v).strip().lower() == "true")
    return table[~flags.to_numpy()]
