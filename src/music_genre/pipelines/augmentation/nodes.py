"""Augmentation nodes: two masked copies of every training spectrogram (streamed to a store)
and a preview figure. Validation and test spectrograms are never augmented."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from music_genre.audio.augment import MASK_KINDS, augment_item, augmentation_settings, augmented_key
from music_genre.audio.spectrograms import (
    LazySpectrograms,
    SpectrogramBatch,
    plot_spectrogram,
    settings_fingerprint,
)
from music_genre.config import AugmentationParams, node_settings

logger = logging.getLogger(__name__)

TRAINING_SPLIT = "training"


def training_track_ids(tracks: pd.DataFrame, spectrograms: Mapping[str, Any]) -> list[str]:
    """Training tracks that have a stored spectrogram, sorted. The others of the training split
    failed in the spectrogram pipeline and are listed in bad_tracks_spectrogram.csv."""
    for column in ("track_id", "split"):
        if column not in tracks.columns:
            raise ValueError(
                f"tracks lacks column {column!r}: re-run `kedro run --pipelines=ingestion`."
            )
    training = sorted(tracks.loc[tracks["split"] == TRAINING_SPLIT, "track_id"].astype(str))
    available = [t for t in training if t in spectrograms]
    if len(available) < len(training):
        logger.warning(
            "%d training track(s) have no spectrogram and get no augmented copies (see "
            "bad_tracks_spectrogram.csv)",
            len(training) - len(available),
        )
    return available


def augment_training_spectrograms(
    tracks: pd.DataFrame,
    spectrograms: LazySpectrograms,
    stored: Mapping[str, Mapping[str, Any]],
    params: Mapping[str, Any] | AugmentationParams,
) -> Iterator[SpectrogramBatch]:
    """For each training spectrogram, ``<track_id>__freq_mask`` and ``<track_id>__time_mask``
    (:func:`music_genre.audio.augment.augment_item`), yielded in write batches (a Kedro generator
    node). Copies already stored for the same spectrogram and the same augmentation settings
    are skipped; every copy is seeded by its own key, so skipping changes no other copy."""
    spec = node_settings(AugmentationParams, params)
    settings = augmentation_settings(spec.model_dump())
    batch_size = spec.write_batch_size
    # The copies depend on the source spectrograms' settings too.
    store_settings = {**settings, "source_fingerprint": spectrograms.fingerprint}
    fingerprint = settings_fingerprint(store_settings)
    dtype = spectrograms.settings.get("storage_dtype", "float32")

    track_ids = training_track_ids(tracks, spectrograms)
    # A copy's version tag is its source's (the audio file's), so a recomputed spectrogram
    # gets new copies.
    tags = {augmented_key(t, k): spectrograms.tags[t] for t in track_ids for k in MASK_KINDS}
    done = stored.get(fingerprint, {})
    missing = {key for key, tag in tags.items() if tag not in done.get(key, ())}
    todo = [t for t in track_ids if any(augmented_key(t, k) in missing for k in MASK_KINDS)]
    logger.info(
        "Augmentation (settings %s, mask value %s): %d training spectrograms, %d already "
        "augmented, %d to augment (x%d)",
        fingerprint,
        settings["mask_value"],
        len(track_ids),
        len(track_ids) - len(todo),
        len(todo),
        len(MASK_KINDS),
    )
    yield SpectrogramBatch(fingerprint, store_settings, tags=tags, is_manifest=True)

    arrays: dict[str, np.ndarray] = {}
    for track_id in tqdm(
        todo, desc="augmenting", unit="spectrogram", mininterval=1.0, disable=not todo
    ):
        spec = spectrograms[track_id]()
        for kind in MASK_KINDS:
            copy = augment_item(spec, track_id, kind, settings)
            arrays[augmented_key(track_id, kind)] = copy.astype(dtype)
        if len(arrays) >= batch_size:
            yield SpectrogramBatch(fingerprint, store_settings, arrays, _tags_of(arrays, tags))
            arrays = {}
    if arrays:
        yield SpectrogramBatch(fingerprint, store_settings, arrays, _tags_of(arrays, tags))


def _tags_of(arrays: Mapping[str, Any], tags: Mapping[str, str]) -> dict[str, str]:
    return {key: tags[key] for key in arrays}


def mask_extent(original: np.ndarray, masked: np.ndarray, axis: int) -> tuple[int, int]:
    """(start, width) of the mel bins (axis 0) or frames (axis 1) a mask changed."""
    changed = np.flatnonzero((np.asarray(masked) != np.asarray(original)).any(axis=1 - axis))
    return (int(changed[0]), int(changed[-1] - changed[0] + 1)) if changed.size else (0, 0)


def _describe_extent(kind: str, start: int, width: int) -> str:
    unit = "mel bins" if kind == "freq_mask" else "frames"
    if not width:
        return f"width 0 {unit} (unchanged)"
    return f"{unit} {start}-{start + width - 1} (width {width})"


def plot_augmentation_examples(
    tracks: pd.DataFrame, spectrograms: LazySpectrograms, augmented: LazySpectrograms
) -> Any:
    """One training spectrogram next to its two masked copies (kedro-viz previews the PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), squeeze=False, layout="constrained")
    candidates = [
        t
        for t in training_track_ids(tracks, spectrograms)
        if all(augmented_key(t, k) in augmented for k in MASK_KINDS)
    ]
    if not candidates:
        for ax in axes.flat:
            ax.axis("off")
        axes.flat[0].text(0.5, 0.5, "no augmented spectrogram stored", ha="center")
        return fig
    # Show the most visible pair among the first tracks (a drawn width can be 0 or 1).
    best_score, track_id, panels = -1.0, candidates[0], []
    settings = augmented.settings
    for candidate in candidates[:50]:
        original = spectrograms[candidate]()
        copies = {kind: augmented[augmented_key(candidate, kind)]() for kind in MASK_KINDS}
        extents = {k: mask_extent(original, copies[k], MASK_KINDS[k][0]) for k in MASK_KINDS}
        score = min(
            extents[k][1] / max(int(settings.get(MASK_KINDS[k][1], 1)), 1) for k in MASK_KINDS
        )
        if score > best_score:
            best_score, track_id = score, candidate
            panels = [("original", original)] + [
                (f"{k.replace('_', ' ')}: {_describe_extent(k, *extents[k])}", copies[k])
                for k in MASK_KINDS
            ]
    genre = tracks.set_index(tracks["track_id"].astype(str)).loc[track_id, "genre"]
    low = min(float(p.min()) for _, p in panels)
    high = max(float(p.max()) for _, p in panels)
    images = [
        plot_spectrogram(ax, spec, spectrograms.settings, title)
        for ax, (title, spec) in zip(axes.flat, panels, strict=True)
    ]
    for image in images:
        image.set_clim(low, high)
    fig.colorbar(images[-1], ax=axes, fraction=0.02, label="dB")
    fig.suptitle(
        f"Augmented pair of training track {track_id} ({genre}); masked value: "
        f"{augmented.settings.get('mask_value')}"
    )
    return fig
