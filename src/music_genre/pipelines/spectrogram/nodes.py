"""Spectrogram nodes: tracks -> log-mel spectrograms (parallel, streamed to the store), the
tracks that failed, and a preview figure. The catalog does all writing."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from music_genre.audio.spectrograms import (
    LazySpectrograms,
    SpectrogramBatch,
    n_frames,
    plot_spectrogram,
    settings_fingerprint,
    source_tag,
    spectrogram_settings,
    spectrogram_task,
)
from music_genre.config import SpectrogramParams, node_settings
from music_genre.contracts import BAD_TRACK_COLUMNS
from music_genre.infra.parallel import TaskFailure, resolve_workers, run_tasks

logger = logging.getLogger(__name__)


def _check_tracks(tracks: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in tracks.columns]
    if missing:
        raise ValueError(
            f"tracks (data/03_primary/tracks.parquet) lacks columns {missing}: re-run "
            "`kedro run --pipelines=ingestion`."
        )
    duplicated = tracks["track_id"][tracks["track_id"].duplicated()].unique()
    if len(duplicated):
        raise ValueError(f"tracks has duplicate track_id values, e.g. {list(duplicated[:5])}")


def _spectrogram_results(
    todo: list[tuple[str, str]], settings: Mapping[str, Any], workers: int
) -> Iterator[tuple[str, Any, str]]:
    """``spectrogram_task`` over ``todo`` in worker processes (:func:`run_tasks`: a crashed
    worker costs one track, any worker count gives the same arrays), in completion order."""
    tasks = [(track_id, (track_id, path, settings)) for track_id, path in todo]
    for track_id, result in run_tasks(spectrogram_task, tasks, workers):
        if isinstance(result, TaskFailure):
            yield track_id, None, result.reason
        else:
            yield result


def compute_log_mel_spectrograms(
    tracks: pd.DataFrame,
    stored: Mapping[str, Mapping[str, Any]],
    params: Mapping[str, Any] | SpectrogramParams,
) -> Iterator[SpectrogramBatch]:
    """Compute the spectrogram of every track not yet stored with the same settings and the same
    audio file, in parallel, yielding write batches as they fill up (a Kedro generator node:
    each yielded batch is saved before the next is computed).

    ``stored``: what the store holds (``log_mel_spectrogram_store_index``). The first batch is
    the manifest (every track of this run); every batch carries the failures so far (track id
    -> reason), so the store ends up with the complete list. A single output on purpose: Kedro
    1.7 keeps every chunk of a generator node with several outputs in memory.
    """
    _check_tracks(tracks, ["track_id", "path"])
    spectrogram = node_settings(SpectrogramParams, params)
    # the settings that decide the values (the fingerprint): not workers or batch sizes
    settings = spectrogram_settings(spectrogram.model_dump())
    fingerprint = settings_fingerprint(settings)
    workers = resolve_workers(spectrogram.workers)
    batch_size = spectrogram.write_batch_size

    failures: dict[str, str] = {}
    tags: dict[str, str] = {}
    paths = dict(zip(tracks["track_id"].astype(str), tracks["path"], strict=True))
    for track_id, path in paths.items():
        try:
            tags[track_id] = source_tag(path)
        except OSError as exc:
            failures[track_id] = f"audio file unavailable: {exc}"
    done = stored.get(fingerprint, {})
    todo = [(t, paths[t]) for t, tag in tags.items() if tag not in done.get(t, ())]
    logger.info(
        "Spectrograms (settings %s, shape (%d, %d)): %d tracks, %d already stored, %d to "
        "compute with %d workers",
        fingerprint,
        settings["n_mels"],
        n_frames(settings),
        len(tracks),
        len(tags) - len(todo),
        len(todo),
        workers,
    )
    yield SpectrogramBatch(fingerprint, settings, tags=tags, is_manifest=True, failures=failures)

    arrays: dict[str, Any] = {}
    results = _spectrogram_results(todo, settings, workers)
    progress = tqdm(
        results,
        total=len(todo),
        desc="log-mel spectrograms",
        unit="track",
        mininterval=1.0,
        disable=not todo,
    )
    for track_id, spec, error in progress:
        if error:
            logger.warning("Spectrogram of track %s failed: %s", track_id, error)
            failures[track_id] = error
        else:
            arrays[track_id] = spec
        if len(arrays) >= batch_size:
            tagged = {k: tags[k] for k in arrays}
            yield SpectrogramBatch(fingerprint, settings, arrays, tagged, failures=failures)
            arrays = {}
    if arrays or todo:  # the last batch also carries the complete failure list
        tagged = {k: tags[k] for k in arrays}
        yield SpectrogramBatch(fingerprint, settings, arrays, tagged, failures=failures)


def report_spectrogram_failures(
    tracks: pd.DataFrame, spectrograms: LazySpectrograms
) -> pd.DataFrame:
    """The tracks whose spectrogram could not be computed in the last run, in bad_tracks.csv's
    columns (stage ``spectrogram``); the reporting pipeline merges both reports."""
    info = tracks.assign(track_id=tracks["track_id"].astype(str)).set_index("track_id")
    failures = spectrograms.failures
    report = pd.DataFrame(
        {"track_id": list(failures), "reason": list(failures.values())}, dtype="object"
    )
    report["stage"] = "spectrogram"
    for column in ("path", "genre", "split"):
        report[column] = report["track_id"].map(info[column]) if column in info else None
    if len(report):
        logger.warning(
            "%d track(s) have no spectrogram; reasons in bad_tracks_spectrogram.csv", len(report)
        )
    out = report.reindex(columns=BAD_TRACK_COLUMNS).sort_values("track_id")
    return out.astype({c: "string" for c in BAD_TRACK_COLUMNS}).reset_index(drop=True)


def example_track_per_genre(tracks: pd.DataFrame, available: Mapping[str, Any]) -> pd.DataFrame:
    """The first stored track of each genre (training split first, then by track id)."""
    candidates = tracks[tracks["track_id"].astype(str).isin(available)].copy()
    if candidates.empty:
        return candidates
    candidates["_order"] = (candidates["split"] != "training").astype(int)
    candidates = candidates.sort_values(["_order", "track_id"])
    return candidates.groupby("genre", sort=True).head(1).sort_values("genre")


def plot_spectrogram_examples(tracks: pd.DataFrame, spectrograms: LazySpectrograms) -> Any:
    """One example log-mel spectrogram per genre (kedro-viz previews the saved PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    examples = example_track_per_genre(tracks, spectrograms)
    n = max(len(examples), 1)
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4 * cols, 2.8 * rows + 0.6), squeeze=False, layout="constrained"
    )
    image = None
    for ax, (_, row) in zip(axes.flat, examples.iterrows(), strict=False):
        spec = spectrograms[str(row["track_id"])]()
        title = f"{row['genre']}  ({row['track_id']})"
        image = plot_spectrogram(ax, spec, spectrograms.settings, title)
    for ax in list(axes.flat)[len(examples) :]:
        ax.axis("off")
    if image is None:
        axes.flat[0].text(0.5, 0.5, "no spectrogram stored", ha="center", va="center")
    else:
        fig.colorbar(image, ax=axes, fraction=0.02, label="dB (power_to_db, ref 1.0)")
    fig.suptitle(f"Log-mel spectrograms, one per genre (settings {spectrograms.fingerprint})")
    return fig
