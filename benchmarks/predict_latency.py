"""Benchmark: single-clip prediction latency, ONNX Runtime (the default) against Keras.

    python benchmarks/predict_latency.py [--project .] [--env demo] [--model cnn]
                                         [--runs 3] [--requests 20] [FILE ...]

Needs a trained project (``make run``): the chosen model's ``.keras`` file and its ONNX export
(written with it; for ``--model transfer`` the backbone's cut-level export
``transfer_best_backbone``; ``--model best`` is the command's default choice). FILE defaults
to one synthesized 30-s stereo 44.1 kHz MP3.

1. ``genre-predict`` wall time per file, each run a fresh process: ``--runtime keras`` (the
   Keras model, TensorFlow imported) against the default (the ONNX export, no TensorFlow);
   median of ``--runs``.
2. The served model's per-request time, measured in this process: the predictor built as the
   serving pipeline builds it (Keras networks exported to ONNX, or left Keras), pickled and
   unpickled as MLflow stores it, then ``GenrePredictorModel.predict`` on a one-row table,
   ``--requests`` times after one warm-up request (median and p95).
3. Model only (the study's Table 3 measure): the network on one computed spectrogram or
   feature row, ONNX Runtime vs the compiled Keras call vs ``model.predict``, median of 50;
   for transfer the backbone on one window's computed input (musicnn: its patches).

The last line reads ``predict_onnx_s=.. predict_keras_s=.. served_onnx_ms=.. served_keras_ms=..
model_onnx_ms=.. model_keras_ms=.. speedup_predict=.. speedup_served=..``. Other programs
using the CPU slow every figure; the load average is printed so a reader can judge.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from synthetic_audio import synthesize_clip  # benchmarks/ is on sys.path when run as a script

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _clip(folder: Path) -> Path:
    import soundfile as sf

    path = folder / "clip_30s.mp3"
    if not path.is_file():
        sf.write(path, synthesize_clip(0), 44100, format="MP3")
    return path


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def time_command(args: argparse.Namespace, files: list[str], runtime: str) -> list[float]:
    """Wall seconds of ``genre-predict`` in fresh processes (start-up included)."""
    command = [
        str(Path(sys.executable).with_name("genre-predict")),
        "--project",
        str(args.project),
        "--model",
        args.model,
        "--runtime",
        runtime,
        "--json",
        *files,
    ]
    if args.env:
        command[1:1] = ["--env", args.env]
    walls = []
    for _ in range(args.runs):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"genre-predict failed:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout)[0]
        print(f"  {runtime:5s} {walls[-1]:6.2f} s  {result['runtime']}  timing {result['timing']}")
    return walls


def served_predictors(args: argparse.Namespace) -> dict[str, object]:
    """The served model, built as the serving pipeline builds it, with and without export."""
    from music_genre.commands.predict import _kedro_context
    from music_genre.contracts import MODEL_KINDS
    from music_genre.serving import best_model_kind, build_predictor, export_networks
    from music_genre.serving.served_model import GenrePredictorModel

    context = _kedro_context(args.project, args.env)  # the command's catalog and parameters
    catalog, params = context.catalog, context.params
    kind = args.model
    if kind == "best":
        kind = best_model_kind({k: catalog.load(f"{k}_results") for k in MODEL_KINDS})
    served = {}
    for runtime in ("onnx", "keras"):
        predictor = build_predictor(kind, catalog.load, params, exported=False)
        if runtime == "onnx":
            predictor = export_networks(predictor)
        model = GenrePredictorModel(
            predictor, params["serving"]["min_seconds"], params["serving"]["max_windows"]
        )
        served[runtime] = pickle.loads(pickle.dumps(model))  # as the server loads it
    return served


def time_requests(model: object, path: str, n: int) -> list[float]:
    import base64

    import pandas as pd

    # what a client sends: the file's bytes (the served model reads no paths, issue #24)
    audio = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    request = pd.DataFrame({"audio": [audio], "name": [Path(path).name]})
    model.predict(None, request)  # warm-up (first request of a server)
    seconds = []
    for _ in range(n):
        started = time.perf_counter()
        frame = model.predict(None, request)
        seconds.append(time.perf_counter() - started)
        if frame["error"].iloc[0]:
            raise SystemExit(f"served model failed: {frame['error'].iloc[0]}")
    return seconds


def backbone_call(predictor: object, path: str) -> object:
    """The transfer backbone (exported or Keras) on one window's computed input."""
    from music_genre.audio.spectrograms import spectrogram_from_file

    extractor = predictor.extractor()
    if predictor.reads_audio:
        patches = extractor.front_end(extractor.load_signal(path, 0.0))
        return lambda: extractor.embed_front_ends([patches])
    settings = {**predictor.spectrogram_settings, "offset_s": 0.0}
    images = extractor.prepare([spectrogram_from_file(path, settings)])
    return lambda: extractor.features_of_inputs(images)


def time_network(predictor: object, path: str) -> dict[str, float]:
    """Median ms of 50 calls of the network on one window's computed inputs."""
    out = {}

    def median_ms(call) -> float:
        call()
        times = []
        for _ in range(50):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        return 1000 * statistics.median(times)

    if not hasattr(predictor, "window_inputs"):  # transfer: the backbone alone
        out["model_ms"] = median_ms(backbone_call(predictor, path))
        return out
    inputs = predictor.window_inputs(path, [0.0])
    out["model_ms"] = median_ms(lambda: predictor.probabilities(inputs))
    keras_model = getattr(predictor.network(), "model", None)
    if keras_model is not None:
        out["model_predict_ms"] = median_ms(lambda: keras_model.predict(inputs, verbose=0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*")
    parser.add_argument("--project", type=Path, default=PROJECT_ROOT)
    parser.add_argument("--env", default="demo")
    parser.add_argument(
        "--model", default="cnn", choices=("cnn", "handcrafted", "transfer", "best")
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    args.project = args.project.resolve()
    files = [os.path.abspath(f) for f in args.files] or [str(_clip(Path(tempfile.gettempdir())))]
    print(f"files: {files}  model: {args.model}  cpus: {os.cpu_count()}  load: {_load()}")

    print("1. genre-predict, one fresh process per run (wall s):")
    command = {runtime: time_command(args, files, runtime) for runtime in ("keras", "auto")}
    predict_s = {runtime: statistics.median(walls) for runtime, walls in command.items()}

    print(f"2. served model, {args.requests} sequential one-file requests:")
    served = served_predictors(args)
    served_ms = {}
    for runtime, model in served.items():
        seconds = time_requests(model, files[0], args.requests)
        served_ms[runtime] = 1000 * statistics.median(seconds)
        print(
            f"  {runtime:5s} median {served_ms[runtime]:7.1f} ms  "
            f"p95 {1000 * _percentile(seconds, 95):7.1f} ms"
        )

    print("3. model only, one computed window (median of 50 calls, ms):")
    network = {
        runtime: time_network(model.predictor, files[0]) for runtime, model in served.items()
    }
    for runtime, figures in network.items():
        listed = "  ".join(f"{k} {v:.2f}" for k, v in figures.items())
        print(f"  {runtime:5s} {listed}")
    print(f"load after: {_load()}")
    print(
        f"predict_onnx_s={predict_s['auto']:.2f} predict_keras_s={predict_s['keras']:.2f} "
        f"served_onnx_ms={served_ms['onnx']:.1f} served_keras_ms={served_ms['keras']:.1f} "
        f"model_onnx_ms={network['onnx']['model_ms']:.2f} "
        f"model_keras_ms={network['keras']['model_ms']:.2f} "
        f"speedup_predict={predict_s['keras'] / predict_s['auto']:.2f} "
        f"speedup_served={served_ms['keras'] / served_ms['onnx']:.2f}"
    )


if __name__ == "__main__":
    main()
