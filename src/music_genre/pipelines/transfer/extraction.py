# Over 400 lines: the two extraction jobs share one store-index protocol.
"""The feature-extraction jobs of the transfer pipeline, one per store key.

The extraction node runs each job against the store's index (what is stored) and yields the
batches it computes, which ``FeatureStoreDataset`` writes at once. ``CutLevelFeatureJob`` (ImageNet backbones): each spectrogram is loaded
once, fingerprinted by its content, and skipped when the store already holds features for that
fingerprint; the rest go through the backbone in batches (one forward pass gives every cut
level), and each batch is written as soon as it is computed. ``AudioEmbeddingJob`` (backbones
with their own front end, musicnn): the same, reading each track's audio file, fingerprinted by
the file's size and modification time; worker processes decode and run the front end while
this process runs the network on the patches of a whole batch of tracks at once.

With ``runtime.executor: dask`` each batch is one task on the cluster instead, network
included (``FeatureJob._run_on_cluster``): it carries the batch's spectrograms (loaded here) or
audio paths (read by the worker), and each worker process builds the network once and keeps it
(``music_genre.models.backbones.cut_level_batch`` / ``audio_batch``). The batches hold the same tracks
as locally, so the store's part files are the same; only when a worker cannot read a track of a
batch (an audio file that does not decode) is that batch one track short, where locally the
next track takes its place.

Timing measurements kept with the features (``state.json`` ``measurements``):
``extract_ms_per_image`` (the ``transfer_results.csv`` column of that name) is the latency of
one item, as the study's Table 13: for the ImageNet backbones the network up to each cut level
on one prepared image (compiled call, batch 1; image construction not included); for musicnn
one 29.7-s clip's front end (log-mel, patches) + network (its 9 patches in one call), decoding
not included; measured in this process on either executor. ``batch_seconds_per_image`` is the
throughput of the extraction as it ran: wall time per computed track including
loading/decoding, front end, batched network and writing.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from music_genre.datasets.feature_store import FeatureBatch, FeatureFailure, FeatureManifest
from music_genre.infra.parallel import TaskFailure, current_runtime, run_tasks
from music_genre.models.backbones import (
    AudioEmbeddingExtractor,
    CutLevelFeatureExtractor,
    NetworkBatch,
    audio_batch,
    cut_level_batch,
)

logger = logging.getLogger(__name__)


def load_spectrogram(loader: Callable[[], np.ndarray], track_id: str) -> np.ndarray:
    """Call a lazy spectrogram and check it is a finite 2-D array; errors name the track."""
    spec = np.asarray(loader(), dtype=np.float32)
    if spec.ndim != 2 or min(spec.shape) < 2:
        raise ValueError(f"track {track_id}: spectrogram has shape {spec.shape}, expected 2-D")
    if not np.isfinite(spec).all():
        raise ValueError(f"track {track_id}: spectrogram contains NaN or infinite values")
    return spec


def store_digests(spectrograms: Mapping[str, Any]) -> dict[str, str]:
    """Digests from a spectrogram store's settings fingerprint and per-track source tags
    (``LazySpectrograms.fingerprint`` / ``.tags``), when the mapping carries them."""
    fingerprint = getattr(spectrograms, "fingerprint", "")
    tags = getattr(spectrograms, "tags", {}) or {}
    if not fingerprint:
        return {}
    return {
        track_id: "src-" + hashlib.sha1(f"{fingerprint}/{tag}".encode()).hexdigest()[:16]
        for track_id, tag in tags.items()
        if tag
    }


def spectrogram_digest(spec: np.ndarray) -> str:
    """Content fingerprint: features are recomputed when the spectrogram itself changes."""
    digest = hashlib.sha1(str(spec.shape).encode())
    digest.update(np.ascontiguousarray(spec, dtype=np.float32).tobytes())
    return digest.hexdigest()[:20]


@dataclass(kw_only=True)
class FeatureJob:
    """One store key's features: skip what is stored, compute the rest in batches, write each
    batch as soon as it is computed, and time one item the way the study did.

    Subclasses say how a track becomes a network input (``_prepare``: raise for a bad track,
    return None when the store already has it), how a batch of inputs becomes features at every
    cut level (``_features``), and how one input is timed (``_time_one``)."""

    key: str
    description: dict[str, Any]
    track_ids: Sequence[str]
    batch_size: int = 16
    timing_runs: int = 10
    current: dict[str, str] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.extractor.cut_levels)  # type: ignore[attr-defined]

    def _prepare(self, track_id: str, stored: Container[tuple[str, str]]) -> tuple[str, Any] | None:
        raise NotImplementedError

    def _features(self, inputs: list[Any]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _time_one(self, one: Any) -> Any:
        raise NotImplementedError

    def _inputs(
        self, stored: Container[tuple[str, str]]
    ) -> Iterator[tuple[str, str, Any] | FeatureFailure]:
        """``(track_id, digest, network input)`` of every track still to compute, or its
        failure; tracks already stored are skipped (``_prepare`` returns None)."""
        return self._each_track(stored, self._prepare)

    def _each_track(
        self,
        stored: Container[tuple[str, str]],
        prepare: Callable[[str, Container[tuple[str, str]]], tuple[str, Any] | None],
    ) -> Iterator[tuple[str, str, Any] | FeatureFailure]:
        for track_id in self.track_ids:
            try:
                prepared = prepare(track_id, stored)
            except Exception as exc:  # noqa: BLE001 - one bad track never stops the run
                yield FeatureFailure(track_id, f"{type(exc).__name__}: {exc}")
                continue
            if prepared is not None:
                yield track_id, prepared[0], prepared[1]

    def run(self, stored: Container[tuple[str, str]]) -> Iterator[FeatureBatch | FeatureFailure]:
        """Batches of the items not in ``stored`` ((item, digest) pairs), and failures; fills
        ``current`` (item -> digest of every item covered) and ``measurements``. With
        ``runtime.executor: dask`` the network runs on the cluster (:meth:`_run_on_cluster`),
        else in this process."""
        self.current, self.measurements = {}, {}
        if current_runtime().executor == "dask":
            yield from self._run_on_cluster(stored)
            return
        ids: list[str] = []
        digests: list[str] = []
        inputs: list[Any] = []
        computed, started = 0, time.perf_counter()
        for item in self._inputs(stored):
            if isinstance(item, FeatureFailure):
                yield item
                continue
            ids.append(item[0])
            digests.append(item[1])
            inputs.append(item[2])
            if len(ids) >= self.batch_size:
                last = inputs[-1]
                yield self._batch(ids, digests, inputs)
                computed += len(ids)
                ids, digests, inputs = [], [], []
                self._log_progress(computed, started)
        if ids:
            last = inputs[-1]
            yield self._batch(ids, digests, inputs)
            computed += len(ids)
        if computed:
            self.measurements = {
                "extract_ms_per_image": self._time_one(last),
                "timing_runs": self.timing_runs,
                "batch_seconds_per_image": (time.perf_counter() - started) / computed,
            }

    def _batch(self, ids: list[str], digests: list[str], inputs: list[Any]) -> FeatureBatch:
        # A network failure is not a track's fault (weights, memory): it stops the run.
        features = self._features(inputs)
        self.current.update(zip(ids, digests, strict=True))
        return FeatureBatch(list(ids), list(digests), features, key=self.key)

    # --- runtime.executor: dask ------------------------------------------------------------
    # What a batch task receives per track (``_cluster_items``: the tracks ``_inputs`` gives the
    # local path, in the same order) and which task runs a batch (music_genre.models.backbones).
    _batch_task: ClassVar[Callable[..., NetworkBatch]]

    def _cluster_items(
        self, stored: Container[tuple[str, str]]
    ) -> Iterator[tuple[str, str, Any] | FeatureFailure]:
        raise NotImplementedError

    def _retry_payload(self, track_id: str) -> Any | None:
        """A track's task input again, to run each track of a batch that crashed its workers
        alone; None (the default): such a crash stops the run, as a network failure does."""
        return None

    def _computed_on_cluster(self, track_ids: list[str]) -> None:
        """Called with the tracks of each batch computed on the cluster."""

    def _run_on_cluster(
        self, stored: Container[tuple[str, str]]
    ) -> Iterator[FeatureBatch | FeatureFailure]:
        """Each batch one task on the Dask cluster (:func:`run_tasks`: a window of batches in
        flight, a dead worker replaced and its task rerun), which reads the batch's inputs and
        runs the network on a worker (``cut_level_batch`` / ``audio_batch``). A batch holds
        the tracks the local path's batch holds, in the same order, so it is stored in the same
        part file (see the module's docstring for the exception); batches complete in any
        order. A batch that kills its workers stops the run, except for audio, where each of
        its tracks is run again alone (a decoder crash then costs its track). ``current`` is
        put in track order and the failures are yielded last, in track order."""
        digests: dict[str, str] = {}
        failures: dict[str, str] = {}
        sent: dict[str, list[str]] = {}  # task key -> its tracks

        def tasks(
            items: Iterable[tuple[str, str, Any] | FeatureFailure], size: int
        ) -> Iterator[tuple[str, tuple]]:
            ids: list[str] = []
            payloads: list[Any] = []
            for item in items:
                if isinstance(item, FeatureFailure):
                    failures[item.item_id] = item.reason
                    continue
                digests[item[0]] = item[1]
                ids.append(item[0])
                payloads.append(item[2])
                if len(ids) >= size:
                    yield task(ids, payloads)
                    ids, payloads = [], []
            if ids:
                yield task(ids, payloads)

        def task(ids: list[str], payloads: list[Any]) -> tuple[str, tuple]:
            key = f"{ids[0]}..{ids[-1]}"
            sent[key] = ids
            extractor = self.extractor  # type: ignore[attr-defined]
            return key, (extractor, list(zip(ids, payloads, strict=True)))

        computed, started = 0, time.perf_counter()
        batches: Iterator[tuple[str, tuple]] | None = tasks(
            self._cluster_items(stored), self.batch_size
        )
        while batches is not None:
            alone: list[tuple[str, str, Any]] = []
            for key, result in run_tasks(type(self)._batch_task, batches, None):
                ids = sent.pop(key)
                if isinstance(result, TaskFailure):
                    crashed = result.reason.startswith("worker crashed")
                    payloads = [self._retry_payload(t) for t in ids] if crashed else [None]
                    if None in payloads:
                        raise RuntimeError(
                            f"{self.key}: the network batch of tracks {key} failed on the Dask "
                            f"cluster: {result.reason}. A network failure stops the run, as "
                            "it does locally; each worker builds the network itself, so it "
                            "needs the weights and the memory of one network plus a batch "
                            "(lower transfer.batch_size, or give the workers more memory); see "
                            "docs/dask.md (Scaling out with Dask)."
                        )
                    if len(ids) == 1:
                        failures[ids[0]] = result.reason
                        continue
                    logger.warning(
                        "%s: the batch of tracks %s %s; running each of its %d tracks alone",
                        self.key,
                        key,
                        result.reason,
                        len(ids),
                    )
                    alone.extend(zip(ids, [digests[t] for t in ids], payloads, strict=True))
                    continue
                if result.setup_error is not None:
                    raise _named_worker(result.setup_error, result.worker) from None
                failures.update(result.failures)
                if result.build_seconds is not None:
                    logger.info(
                        "%s: worker %s built the network (%.1f s)",
                        self.key,
                        result.worker,
                        result.build_seconds,
                    )
                logger.debug(
                    "%s: batch %s (%d tracks) on worker %s: inputs %.2f s, network %.2f s",
                    self.key,
                    key,
                    len(result.item_ids),
                    result.worker,
                    result.input_seconds,
                    result.network_seconds,
                )
                if not result.item_ids:
                    continue
                batch_digests = [digests[t] for t in result.item_ids]
                self.current.update(zip(result.item_ids, batch_digests, strict=True))
                self._computed_on_cluster(result.item_ids)
                computed += len(result.item_ids)
                yield FeatureBatch(
                    list(result.item_ids), batch_digests, result.features, key=self.key
                )
                self._log_progress(computed, started)
            batches = tasks(alone, 1) if alone else None
        self.current = {t: self.current[t] for t in self.track_ids if t in self.current}
        for track_id in self.track_ids:
            if track_id in failures:
                yield FeatureFailure(track_id, failures[track_id])
        if computed:
            seconds = time.perf_counter() - started
            self.measurements = {
                # one item through the network in this process, as locally
                "extract_ms_per_image": self._time_one(None),
                "timing_runs": self.timing_runs,
                "batch_seconds_per_image": seconds / computed,
            }

    def _log_progress(self, computed: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        if computed % (self.batch_size * 10) == 0 or computed == self.batch_size:
            logger.info(
                "%s: %d/%d tracks extracted (%.2f s per track)",
                self.key,
                computed,
                len(self.track_ids),
                elapsed / computed,
            )


@dataclass(kw_only=True)
class CutLevelFeatureJob(FeatureJob):
    """Spectrogram backbones (VGG16, ResNet50): the study's image of each spectrogram."""

    spectrograms: Mapping[str, Callable[[], np.ndarray]]
    extractor: CutLevelFeatureExtractor
    # track -> digest known without loading (store settings fingerprint + the source file's
    # tag); tracks without one are fingerprinted by their spectrogram's content.
    source_digests: Mapping[str, str] = field(default_factory=dict)
    _last_spectrogram: np.ndarray | None = field(default=None, init=False, repr=False)

    _batch_task = staticmethod(cut_level_batch)

    def _load(
        self, track_id: str, stored: Container[tuple[str, str]]
    ) -> tuple[str, np.ndarray] | None:
        """(digest, spectrogram) of a track to compute; None when the store has it."""
        known = self.source_digests.get(track_id)
        if known and (track_id, known) in stored:
            self.current[track_id] = known
            return None
        spec = load_spectrogram(self.spectrograms[track_id], track_id)
        digest = known or spectrogram_digest(spec)
        if (track_id, digest) in stored:
            self.current[track_id] = digest
            return None
        self._last_spectrogram = spec
        return digest, spec

    def _prepare(
        self, track_id: str, stored: Container[tuple[str, str]]
    ) -> tuple[str, np.ndarray] | None:
        loaded = self._load(track_id, stored)
        if loaded is None:
            return None
        return loaded[0], self.extractor.prepare([loaded[1]])[0]

    def _cluster_items(
        self, stored: Container[tuple[str, str]]
    ) -> Iterator[tuple[str, str, Any] | FeatureFailure]:
        """The spectrograms themselves (workers need not reach the store), loaded and checked
        here; as float16 when that holds them exactly (a float16 store), half the bytes."""
        for item in self._each_track(stored, self._load):
            if isinstance(item, FeatureFailure):
                yield item
            else:
                half = item[2].astype(np.float16)
                exact = np.array_equal(half.astype(np.float32), item[2])
                yield item[0], item[1], half if exact else item[2]

    def _features(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        return self.extractor.features_of_inputs(np.stack(inputs))

    def _time_one(self, one: Any) -> Any:
        # the network up to each cut on one prepared image, as the study's Table 13
        if self._last_spectrogram is None:
            raise RuntimeError("no spectrogram was extracted to time")
        return self.extractor.time_single_image(self._last_spectrogram, runs=self.timing_runs)


def _named_worker(error: Exception, worker: str) -> Exception:
    """A worker's set-up error (weights, cut level), its message prefixed with the worker."""
    try:
        return type(error)(f"worker {worker}: {error}")
    except TypeError:  # a constructor that takes other arguments: the error as it came
        return error


def audio_digest(path: str) -> str:
    """Changes when the audio file changes (size, modification time): it is then re-embedded."""
    from music_genre.audio.spectrograms import source_tag

    return "aud-" + source_tag(path)


@dataclass(kw_only=True)
class AudioEmbeddingJob(FeatureJob):
    """Backbones with their own audio front end (musicnn): each track's audio file."""

    paths: Mapping[str, str]
    extractor: AudioEmbeddingExtractor
    # decoding + front-end processes (None: every core); the network runs in this process
    workers: int | None = None
    _last_path: str | None = field(default=None, init=False, repr=False)

    _batch_task = staticmethod(audio_batch)

    def _audio_files(
        self, stored: Container[tuple[str, str]]
    ) -> Iterator[tuple[str, str, Any] | FeatureFailure]:
        """``(track_id, digest, audio path)`` of every track to compute, or its failure."""
        for track_id in self.track_ids:
            path = self.paths.get(track_id)
            if not path:
                yield FeatureFailure(track_id, f"track {track_id}: no audio path in tracks.parquet")
                continue
            try:
                digest = audio_digest(path)
            except OSError as exc:
                yield FeatureFailure(track_id, f"audio file unavailable: {exc}")
                continue
            if (track_id, digest) in stored:
                self.current[track_id] = digest
                continue
            yield track_id, digest, path

    def _cluster_items(
        self, stored: Container[tuple[str, str]]
    ) -> Iterator[tuple[str, str, Any] | FeatureFailure]:
        return self._audio_files(stored)  # the workers read the audio

    def _retry_payload(self, track_id: str) -> str:
        # a crash here is most likely a decoder's on one file: retried alone, it costs that track
        return self.paths[track_id]

    def _computed_on_cluster(self, track_ids: list[str]) -> None:
        self._last_path = self.paths[track_ids[-1]]

    def _inputs(
        self, stored: Container[tuple[str, str]]
    ) -> Iterator[tuple[str, str, Any] | FeatureFailure]:
        """Decoding and the front end (the per-track part, where a bad file can crash its
        process) run in worker processes (:func:`run_tasks`); their results are put back in
        track order, so each network batch holds the same tracks whatever the worker count."""
        todo: list[tuple[str, tuple]] = []
        digests: dict[str, str] = {}
        for item in self._audio_files(stored):
            if isinstance(item, FeatureFailure):
                yield item
                continue
            track_id, digest, path = item
            digests[track_id] = digest
            todo.append((track_id, (path, *self.extractor.signal_settings)))
        function, leading = self.extractor.front_end_task()
        tasks = [(track_id, (*leading, *args)) for track_id, args in todo]
        results = run_tasks(function, tasks, self.workers, window=2 * self.batch_size)
        for track_id, result in in_task_order(results, [track_id for track_id, _ in tasks]):
            if isinstance(result, TaskFailure):
                yield FeatureFailure(track_id, result.reason)
            else:
                self._last_path = self.paths[track_id]
                yield track_id, digests[track_id], result

    def _features(self, inputs: list[Any]) -> dict[str, np.ndarray]:
        rows = self.extractor.embed_front_ends(inputs)
        return {cut: np.stack([r[cut] for r in rows]) for cut in self.feature_names}

    def _time_one(self, one: Any) -> Any:
        # per 29.7-s clip: front end (log-mel) + network, all patches of the clip in one call
        assert self._last_path is not None
        signal = self.extractor.load_signal(self._last_path)
        return self.extractor.time_single_clip(signal, runs=self.timing_runs)


def run_job(
    job: FeatureJob, stored: Container[tuple[str, str]]
) -> Iterator[FeatureBatch | FeatureManifest]:
    """The job's batches, then its :class:`FeatureManifest` (what the run covers, failures)."""
    failures: dict[str, str] = {}
    computed = 0
    for result in job.run(stored):
        if isinstance(result, FeatureFailure):
            failures[result.item_id] = result.reason
            continue
        computed += len(result.item_ids)
        yield result
    yield FeatureManifest(
        key=job.key,
        feature_names=job.feature_names,
        description=job.description,
        items=dict(job.current),
        failures=failures,
        measurements=dict(job.measurements),
        computed=computed,
    )


def in_task_order(
    results: Iterator[tuple[str, Any]], keys: Sequence[str]
) -> Iterator[tuple[str, Any]]:
    """``(key, result)`` pairs arriving in any order, yielded in the order of ``keys`` as soon
    as each next one is there (at most the results run ahead of the next key are held)."""
    waiting: dict[str, Any] = {}
    position = 0
    for key, result in results:
        waiting[key] = result
        while position < len(keys) and keys[position] in waiting:
            yield keys[position], waiting.pop(keys[position])
            position += 1
    for key in keys[position:]:  # run_tasks yields every key; this is only a safeguard
        if key in waiting:
            yield key, waiting.pop(key)
