"""Benchmark: per-clip embedding time of the transfer backbones, musicnn vs VGG16 vs ResNet50.

    python benchmarks/backbones.py [--n 8] [--runs 3]

All three are measured in one process, on the same ``n`` synthesized 30-s stereo 44.1 kHz clips
(written as WAV into a temporary folder), each the way the transfer pipeline and the prediction
command compute it:

- ``musicnn``: decode to 16 kHz mono (first 29.7 s) -> musicnn's log-mel front end -> 3-s
  patches -> the network on every patch -> averaged (all cut levels come out of this one
  pass);
- ``vgg16`` / ``resnet50``: decode to 22,050 Hz mono (29.7 s) -> the study's log-mel
  spectrogram -> 224 x 224 image -> the full network with every study cut level as an output.
  The weights are randomly initialised (timing does not depend on their values; ImageNet
  weights need a download).

Each backbone gets one warm-up clip (graph building), then ``runs`` passes over the ``n`` clips;
the time per clip is the median over runs of (pass time / n), split into ``front end`` (decode +
spectrogram/image) and ``network``. Batch size 1, as the prediction command works. The last
line gives each backbone's time per clip as a ratio to musicnn's. Other programs using the CPU
slow every backbone alike; the load average is printed so a reader can judge.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


from synthetic_audio import synthesize_clip  # benchmarks/ is on sys.path when run as a script

SECONDS = 30.0
SOURCE_RATE = 44100


def write_clips(folder: Path, n: int) -> list[str]:
    import soundfile as sf

    paths = []
    for i in range(n):
        path = folder / f"clip{i:03d}.wav"
        sf.write(path, synthesize_clip(i, SOURCE_RATE, SECONDS), SOURCE_RATE)
        paths.append(str(path))
    return paths


def musicnn_timer():
    from music_genre.backbones import (
        AudioEmbeddingExtractor,
        get_backbone,
        resolve_weights,
    )

    spec = get_backbone("musicnn")
    extractor = AudioEmbeddingExtractor(spec, resolve_weights("msd", "musicnn"), spec.cut_levels)

    from music_genre.musicnn import (
        MUSICNN_SETTINGS,
        musicnn_log_mel,
        musicnn_patch_outputs,
        musicnn_patches,
    )

    # The steps of musicnn_embeddings (what extractor.embed runs), split to time them apart.
    def front(path: str):
        log_mel = musicnn_log_mel(extractor.load_signal(path))
        return musicnn_patches(log_mel, MUSICNN_SETTINGS["patch_frames"], "repeat")

    def network(patches) -> None:
        outputs = musicnn_patch_outputs(patches, extractor.model)
        {cut: values.mean(axis=0) for cut, values in outputs.items()}

    return front, network


def imagenet_timer(name: str):
    from music_genre.backbones import (
        CutLevelFeatureExtractor,
        get_backbone,
        resolve_weights,
    )
    from music_genre.spectrograms import STUDY_SETTINGS, spectrogram_from_file

    spec = get_backbone(name)
    extractor = CutLevelFeatureExtractor(spec, resolve_weights(None, name, seed=0), spec.cut_levels)

    def front(path: str):
        return extractor.prepare([spectrogram_from_file(path, STUDY_SETTINGS)])

    def network(images) -> None:
        extractor.features_of_inputs(images)

    return front, network


def measure(front, network, paths: list[str], runs: int) -> dict[str, float]:
    network(front(paths[0]))  # warm-up: builds the network and its graph
    fronts, nets = [], []
    for _ in range(runs):
        front_s = net_s = 0.0
        for path in paths:
            start = time.perf_counter()
            x = front(path)
            middle = time.perf_counter()
            network(x)
            front_s += middle - start
            net_s += time.perf_counter() - middle
        fronts.append(front_s / len(paths))
        nets.append(net_s / len(paths))
    front_ms = statistics.median(fronts) * 1000
    net_ms = statistics.median(nets) * 1000
    return {"front_ms": front_ms, "network_ms": net_ms, "total_ms": front_ms + net_ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=8, help="clips per pass")
    parser.add_argument("--runs", type=int, default=3, help="passes per backbone (median)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.runs < 1:
        parser.error("--n and --runs must be at least 1")

    timers = {
        "musicnn": musicnn_timer,
        "vgg16": lambda: imagenet_timer("vgg16"),
        "resnet50": lambda: imagenet_timer("resnet50"),
    }
    with tempfile.TemporaryDirectory(prefix="backbone-bench-") as tmp:
        paths = write_clips(Path(tmp), args.n)
        print(
            f"{args.n} clips of {SECONDS:g} s, {args.runs} runs, batch 1, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
        )
        results = {}
        for name, make in timers.items():
            front, network = make()
            results[name] = measure(front, network, paths, args.runs)
            r = results[name]
            print(
                f"{name:9s} front end {r['front_ms']:8.1f} ms  network "
                f"{r['network_ms']:8.1f} ms  total {r['total_ms']:8.1f} ms per clip"
            )
    base = results["musicnn"]["total_ms"]
    ratios = " ".join(f"{name}={r['total_ms'] / base:.2f}x" for name, r in results.items())
    print(f"per-clip time relative to musicnn: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
