"""Benchmark: where the per-clip embedding time of the transfer backbones goes, old vs new path.

    python benchmarks/backbones.py [--n 16] [--runs 2] [--workers N]

One process, ``n`` synthesized 30-s stereo 44.1 kHz clips (MP3 when libsndfile can write it,
as FMA's files are, else WAV) in a temporary folder. Each backbone's time per clip is split
into the steps the transfer pipeline runs:

- ``decode``: decode + mono + resample the first 29.7 s (musicnn: 16 kHz; VGG16/ResNet50:
  22,050 Hz, the spectrogram stage);
- ``front end``: musicnn's log-mel + 3-s patches; VGG16/ResNet50: the study's log-mel
  spectrogram, then the 224 x 224 three-channel image (``image`` column, what the transfer
  pipeline itself computes from the stored spectrogram);
- ``network``: the forward pass, ``single`` (one clip per call, as ``genre-predict`` and the
  ``extract_ms_per_image`` column) and ``batched`` (``--n`` clips per call, as the pipeline).

``old`` is the path before issue 14 (musicnn: one ``predict_on_batch`` per track on its 9
patches, the front end in this process after the workers decoded; VGG16/ResNet50: an eager
Keras call), ``new`` the current one (a graph traced once; musicnn: workers decode and run the
front end, the patches of ``--n`` tracks go through the network in one pass). ``pipeline`` is
the extraction as the transfer pipeline runs it (``AudioEmbeddingJob``, ``--workers``
processes): wall time per clip, everything included. VGG16/ResNet50 weights are randomly
initialised (timing does not depend on their values; ImageNet weights need a download);
musicnn uses its real ``msd`` weights from the wheel.

Each figure is the median over ``--runs`` after a warm-up call (graph tracing, worker start).
Other programs using the CPU slow every row alike; the load average is printed. The last line
is ``musicnn_clip_ms=<pipeline, new> musicnn_network_ms=<network batched, new>
resnet50_vs_vgg16=<ResNet50 / VGG16 network ms per image, single, new>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from synthetic_audio import synthesize_clip  # benchmarks/ is on sys.path when run as a script

SECONDS = 30.0
SOURCE_RATE = 44100


def write_clips(folder: Path, n: int) -> tuple[list[str], str]:
    import soundfile as sf

    fmt = "MP3" if "MP3" in sf.available_formats() else "WAV"
    paths = []
    for i in range(n):
        path = folder / f"clip{i:03d}.{fmt.lower()}"
        sf.write(path, synthesize_clip(i, SOURCE_RATE, SECONDS), SOURCE_RATE, format=fmt)
        paths.append(str(path))
    return paths, fmt


def per_clip_ms(function: Callable[[], Any], clips: int, runs: int) -> float:
    """Median over ``runs`` of (wall time of one ``function()`` call / ``clips``), in ms,
    after one warm-up call."""
    function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) / clips)
    return statistics.median(times) * 1000.0


# --------------------------------------------------------------------------------- musicnn
def old_musicnn_outputs(patches: np.ndarray, model: Any) -> dict[str, np.ndarray]:
    """The network call before issue 14: ``predict_on_batch`` on one track's patches."""
    outputs = model.predict_on_batch(patches)
    return {cut: np.asarray(values).mean(axis=0) for cut, values in outputs.items()}


def old_musicnn_pipeline(paths: list[str], model: Any, workers: int | None) -> None:
    """The extraction loop before issue 14: workers decode, this process runs the front end
    and one network call per track."""
    from music_genre.infra.parallel import run_tasks
    from music_genre.models.backbones import load_window_signal
    from music_genre.models.musicnn import musicnn_log_mel, musicnn_patches

    tasks = [(str(i), (path, 16000, 29.7)) for i, path in enumerate(paths)]
    for _, signal in run_tasks(load_window_signal, tasks, workers, window=32):
        old_musicnn_outputs(musicnn_patches(musicnn_log_mel(signal)), model)


def new_musicnn_pipeline(paths: list[str], extractor: Any, workers: int | None) -> None:
    """The transfer pipeline's extraction job as it runs now (nothing stored yet)."""
    from music_genre.pipelines.transfer.extraction import AudioEmbeddingJob

    job = AudioEmbeddingJob(
        key="bench",
        description={},
        track_ids=[str(i) for i in range(len(paths))],
        paths={str(i): path for i, path in enumerate(paths)},
        extractor=extractor,
        workers=workers,
        batch_size=len(paths),
        timing_runs=1,
    )
    job._time_one = lambda one: {}  # the single-clip latency is measured apart ("single")
    for item in job.run(set()):
        if not hasattr(item, "features"):
            raise RuntimeError(f"benchmark clip failed: {item}")


def bench_musicnn(paths: list[str], runs: int, workers: int | None) -> dict[str, dict]:
    from music_genre.models.backbones import AudioEmbeddingExtractor, get_backbone, resolve_weights
    from music_genre.models.musicnn import musicnn_patch_outputs, musicnn_signal_patches

    spec = get_backbone("musicnn")
    extractor = AudioEmbeddingExtractor(spec, resolve_weights("msd", "musicnn"), spec.cut_levels)
    model = extractor.model
    n = len(paths)
    signals = [extractor.load_signal(p) for p in paths]
    patches = [musicnn_signal_patches(s) for s in signals]
    decode = per_clip_ms(lambda: [extractor.load_signal(p) for p in paths], n, runs)
    front = per_clip_ms(lambda: [musicnn_signal_patches(s) for s in signals], n, runs)
    stacked = np.concatenate(patches)
    old = {
        "decode": decode,
        "front end": front,
        "single": per_clip_ms(lambda: [old_musicnn_outputs(p, model) for p in patches], n, runs),
        "batched": float("nan"),  # the old path had one call per track
        "pipeline": per_clip_ms(lambda: old_musicnn_pipeline(paths, model, workers), n, runs),
    }
    new = {
        "decode": decode,
        "front end": front,
        "single": per_clip_ms(lambda: [musicnn_patch_outputs(p, model) for p in patches], n, runs),
        "batched": per_clip_ms(lambda: musicnn_patch_outputs(stacked, model), n, runs),
        "pipeline": per_clip_ms(lambda: new_musicnn_pipeline(paths, extractor, workers), n, runs),
    }
    return {"old": old, "new": new}


# ----------------------------------------------------------------------- VGG16 / ResNet50
def bench_imagenet(name: str, paths: list[str], runs: int) -> dict[str, dict]:
    from music_genre.audio.spectrograms import (
        STUDY_SETTINGS,
        decode_window,
        log_mel_spectrogram,
        n_samples,
    )
    from music_genre.models.backbones import (
        CutLevelFeatureExtractor,
        compiled_call,
        get_backbone,
        resolve_weights,
    )

    spec = get_backbone(name)
    extractor = CutLevelFeatureExtractor(spec, resolve_weights(None, name, seed=0), spec.cut_levels)
    cut_model = extractor.cut_model
    n = len(paths)
    signals = [decode_window(p, STUDY_SETTINGS)[: n_samples(STUDY_SETTINGS)] for p in paths]
    spectrograms = [log_mel_spectrogram(s, STUDY_SETTINGS) for s in signals]
    images = extractor.prepare(spectrograms)
    decode = per_clip_ms(lambda: [decode_window(p, STUDY_SETTINGS) for p in paths], n, runs)
    mel = per_clip_ms(lambda: [log_mel_spectrogram(s, STUDY_SETTINGS) for s in signals], n, runs)
    image = per_clip_ms(lambda: [extractor.prepare([s]) for s in spectrograms], n, runs)
    compiled = compiled_call(cut_model)

    def eager(x: np.ndarray) -> None:
        [np.asarray(o) for o in cut_model(x, training=False)]

    def graph(x: np.ndarray) -> None:
        [np.asarray(o) for o in compiled(x)]

    common = {"decode": decode, "front end": mel, "image": image}
    old = {
        **common,
        "single": per_clip_ms(lambda: [eager(images[i : i + 1]) for i in range(n)], n, runs),
        "batched": per_clip_ms(lambda: eager(images), n, runs),
    }
    new = {
        **common,
        "single": per_clip_ms(lambda: [graph(images[i : i + 1]) for i in range(n)], n, runs),
        "batched": per_clip_ms(lambda: graph(images), n, runs),
    }
    return {"old": old, "new": new}


COLUMNS = ("decode", "front end", "image", "single", "batched", "pipeline")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=16, help="clips (= tracks per batched call)")
    parser.add_argument("--runs", type=int, default=2, help="timed repetitions (median)")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (all)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.runs < 1:
        parser.error("--n and --runs must be at least 1")

    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="backbone-bench-") as tmp:
        paths, fmt = write_clips(Path(tmp), args.n)
        print(
            f"{args.n} {fmt} clips of {SECONDS:g} s, median of {args.runs} runs, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, TF {tf.__version__} "
            f"(intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}"
            f", inter-op {tf.config.threading.get_inter_op_parallelism_threads() or 'auto'})"
        )
        results = {"musicnn": bench_musicnn(paths, args.runs, args.workers)}
        for name in ("vgg16", "resnet50"):
            results[name] = bench_imagenet(name, paths, args.runs)
        load = os.getloadavg()[0]

    print("ms per clip; network single = 1 clip per call, batched = all clips in one call")
    header = f"{'backbone':9s} {'path':4s} " + " ".join(f"{c:>10s}" for c in COLUMNS)
    print(header)
    print("-" * len(header))
    for name, paths_ in results.items():
        for path_name, row in paths_.items():
            cells = " ".join(
                f"{row[c]:10.1f}" if c in row and row[c] == row[c] else f"{'-':>10s}"
                for c in COLUMNS
            )
            print(f"{name:9s} {path_name:4s} {cells}")
    music = results["musicnn"]
    print(
        f"musicnn pipeline speed-up {music['old']['pipeline'] / music['new']['pipeline']:.2f}x; "
        f"network-only limit (batched) {music['new']['batched']:.1f} ms per clip; "
        f"load average at the end {load:.2f}"
    )
    for path_name in ("old", "new"):
        ratios = {
            kind: results["resnet50"][path_name][kind] / results["vgg16"][path_name][kind]
            for kind in ("single", "batched")
        }
        print(
            f"resnet50/vgg16 network per image, {path_name}: single {ratios['single']:.2f}, "
            f"batched {ratios['batched']:.2f}"
        )
    print(
        f"musicnn_clip_ms={music['new']['pipeline']:.1f} "
        f"musicnn_network_ms={music['new']['batched']:.1f} "
        f"resnet50_vs_vgg16="
        f"{results['resnet50']['new']['single'] / results['vgg16']['new']['single']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
