"""Memory of the served genre predictor under concurrent requests, with the per-process
prediction lock (music_genre.serving.served_model.PREDICT_LOCK) and without it, in one run.

    .venv/bin/python benchmarks/serve_memory.py [--clients 4] [--requests 3] [--seconds 300]

A CNN predictor whose network has the activations of a real one (two 16-filter convolutions
over each 128x1280 window: ~10 MB per window and layer in float32; untrained, seeded) is logged
as the serving pipeline logs it (music_genre.serving.package), and served by MLflow's scoring
server (the app ``mlflow models serve`` runs: uvicorn, each request's predict in a thread of
its own) in a child process on 127.0.0.1, once as it is and once with the lock replaced by a
no-op. Each request carries one MP3 of ``--seconds`` (10 windows of 30 s by default). After one
``--warmup`` sequential requests (sessions and arenas allocated: RSS grows over the first few
requests of even one client, then holds; their peak is one client's peak), ``--clients``
threads send ``--requests`` each at once; the server's RSS is sampled every 10 ms.
``rss_growth`` = peak RSS under load / one client's peak RSS. Last line:
``rss_growth_lock=... rss_growth_nolock=... peak_mb_lock=... peak_mb_nolock=...
p50_ms_lock=... p50_ms_nolock=... peak_ratio_nolock_over_lock=...``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

# benchmarks/ is on sys.path when run as a script
from _serving import (
    free_port,
    post,
    request_body,
    start_server,
    stop_server,
    tree_rss_mb,
    wait_until_up,
)

ROOT = Path(__file__).resolve().parents[1]

# The child: the scoring server's app over the logged model, the lock optionally a no-op.
SERVER = """
import contextlib, sys, uvicorn, mlflow.pyfunc
from mlflow.pyfunc import scoring_server
from music_genre.serving import served_model
if sys.argv[3] == "nolock":
    served_model.PREDICT_LOCK = contextlib.nullcontext()
model = mlflow.pyfunc.load_model(sys.argv[1])
uvicorn.run(scoring_server.init(model), host="127.0.0.1", port=int(sys.argv[2]), log_level="error")
"""


def log_model(folder: Path, max_windows: int) -> str:
    """A heavy-activation CNN predictor, logged as the serving pipeline does; its model URI."""
    import keras
    import mlflow

    from music_genre.audio.spectrograms import STUDY_SETTINGS, spectrogram_settings
    from music_genre.serving import CnnPredictor, export_networks
    from music_genre.serving.package import log_genre_predictor
    from music_genre.serving.served_model import GenrePredictorModel

    keras.utils.set_random_seed(0)
    network = keras.Sequential(
        [
            keras.Input((128, 1280, 1)),
            keras.layers.Rescaling(1 / 80.0),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    settings = spectrogram_settings({**STUDY_SETTINGS, "pad_mode": "repeat"})
    predictor = export_networks(CnnPredictor(network, ["Folk", "Pop", "Rock"], settings))
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = mlflow.create_experiment("bench", artifact_location=(folder / "art").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        log_genre_predictor(GenrePredictorModel(predictor, max_windows=max_windows))
    return f"runs:/{run.info.run_id}/model"


def song(path: Path, seconds: float) -> Path:
    import numpy as np
    import soundfile as sf

    rate = 22050
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
    sf.write(path, np.stack([wave, wave], axis=1), rate, format="MP3")
    return path


def post_ok(port: int, body: bytes) -> float:
    """One request's milliseconds; RuntimeError when it failed."""
    elapsed, error = post(port, body)
    if error:
        raise RuntimeError(error)
    return elapsed


def measure(
    uri: str, mode: str, body: bytes, clients: int, requests: int, warmup: int, env: dict
) -> dict:
    port = free_port()
    # its own process group, stopped below
    server = start_server([sys.executable, "-c", SERVER, uri, str(port), mode], env=env)
    try:
        wait_until_up(server, port)
        base = tree_rss_mb(server.pid)
        peak, done = base, threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss_mb(server.pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        for _ in range(warmup):  # sessions, arenas, the decoders: one client's steady peak
            post_ok(port, body)
        done.set()
        sampler.join()
        single, peak, done = peak, tree_rss_mb(server.pid), threading.Event()
        latencies: list[float] = []

        def client() -> None:
            for _ in range(requests):
                latencies.append(post_ok(port, body))

        sampler = threading.Thread(target=sample)
        sampler.start()
        workers = [threading.Thread(target=client) for _ in range(clients)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
    finally:
        stop_server(server)
    result = {
        "base_mb": base,
        "single_mb": single,
        "peak_mb": peak,
        "growth": peak / single,
        "p50_ms": statistics.median(latencies),
        "wall_s": wall,
        "requests": len(latencies),
    }
    print(
        f"{mode}: idle {base:.0f} MB, one client's peak {single:.0f} MB, peak under load "
        f"{peak:.0f} MB (x{peak / single:.2f}), "
        f"p50 {result['p50_ms']:.0f} ms, {len(latencies)} requests in {wall:.1f} s",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=3, help="per client")
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the MP3 sent")
    parser.add_argument("--max-windows", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=4, help="sequential requests first")
    args = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with tempfile.TemporaryDirectory(prefix="serve-memory-") as tmp:
        folder = Path(tmp)
        uri = log_model(folder, args.max_windows)
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
        body = request_body(song(folder / "song.mp3", args.seconds), "s")
        lock = measure(uri, "lock", body, args.clients, args.requests, args.warmup, env)
        nolock = measure(uri, "nolock", body, args.clients, args.requests, args.warmup, env)
    print(
        f"rss_growth_lock={lock['growth']:.2f} rss_growth_nolock={nolock['growth']:.2f} "
        f"peak_mb_lock={lock['peak_mb']:.0f} peak_mb_nolock={nolock['peak_mb']:.0f} "
        f"p50_ms_lock={lock['p50_ms']:.0f} p50_ms_nolock={nolock['p50_ms']:.0f} "
        f"peak_ratio_nolock_over_lock={nolock['peak_mb'] / lock['peak_mb']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
