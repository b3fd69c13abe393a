"""Benchmark: the spectrogram pipeline's extraction against the study's single-process loop.

    python benchmarks/spectrogram.py [--n 192] [--workers N] [--audio-dir DIR]

1. Writes ``n`` synthesized 30-s stereo 44.1 kHz MP3 files (FMA's typical format) into
   ``--audio-dir`` (reused by later runs; default: a folder in the system temp dir).
2. The study's approach, in a fresh process: a loop of
   ``librosa.load(path, sr=22050, mono=True, duration=29.7)`` -> ``melspectrogram`` ->
   ``power_to_db`` over the ``n`` files (timed from the first call, so librosa's one-time
   warm-up counts, as it did for the study).
3. The pipeline, in a fresh process: the spectrogram pipeline's extraction nodes
   (``compute_log_mel_spectrograms`` + the failure report) on an in-memory catalog writing to a
   fresh store, for ``n`` tracks and then for ``4n`` tracks (each file listed 4 times under
   different track ids, through hard links). Timed around ``runner.run``, which includes
   starting the worker processes.
4. Peak memory of each pipeline run: the sum over the process and all its descendants (the
   workers) of their proportional set size (PSS, from /proc/<pid>/smaps_rollup; RSS where PSS
   is unavailable), sampled every 50 ms from this process.

The last line reads ``speedup=<study time / pipeline time at n> memory_growth=<peak at 4n /
peak at n>``. Other programs using the CPU at the same time slow both sides; the load average
is printed so a reader can judge.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from synthetic_audio import synthesize_clip  # benchmarks/ is on sys.path when run as a script

STUDY = {
    "sr": 22050,
    "duration": 29.7,
    "n_fft": 2048,
    "hop_length": 512,
    "n_mels": 128,
    "fmax": 8000,
}
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _write_track(args: tuple[int, str]) -> str:
    import soundfile as sf

    index, path = args
    if not Path(path).is_file():
        tmp = f"{path}.tmp.mp3"
        sf.write(tmp, synthesize_clip(index), 44100, format="MP3")
        os.replace(tmp, path)
    return path


def prepare_audio(audio_dir: Path, n: int) -> list[str]:
    audio_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(i, str(audio_dir / f"bench_{i:05d}.mp3")) for i in range(n)]
    missing = [t for t in tasks if not Path(t[1]).is_file()]
    if missing:
        print(f"writing {len(missing)} synthesized MP3 files to {audio_dir} ...", flush=True)
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            list(pool.map(_write_track, missing))
    return [path for _, path in tasks]


def replicate(paths: list[str], copies: int, folder: Path) -> list[str]:
    """``copies`` names per file (hard links, or copies where links are impossible)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = list(paths)
    for k in range(1, copies):
        for path in paths:
            target = folder / f"{Path(path).stem}_copy{k}.mp3"
            if not target.exists():
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copy2(path, target)
            out.append(str(target))
    return out


# -- the two sides, each run in a fresh process ----------------------------------------------
def study_side(paths: list[str], sample_out: str) -> dict:
    import librosa

    start = time.perf_counter()
    first = None
    for path in paths:
        y, sr = librosa.load(path, sr=STUDY["sr"], mono=True, duration=STUDY["duration"])
        mel = librosa.feature.melspectrogram(
            y=y,
            sr=sr,
            n_fft=STUDY["n_fft"],
            hop_length=STUDY["hop_length"],
            n_mels=STUDY["n_mels"],
            fmax=STUDY["fmax"],
        )
        db = librosa.power_to_db(mel, ref=1.0)
        if first is None:
            first = db
    elapsed = time.perf_counter() - start
    np.save(sample_out, first)
    return {"elapsed_s": elapsed}


def pipeline_side(paths: list[str], store: str, workers: int | None) -> dict:
    import logging

    import pandas as pd
    import yaml
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from music_genre.datasets import SpectrogramStoreDataset, SpectrogramStoreIndexDataset
    from music_genre.pipelines.spectrogram import create_pipeline

    logging.basicConfig(level=logging.WARNING)
    conf = PROJECT_ROOT / "conf" / "base" / "parameters" / "spectrogram.yml"
    params = yaml.safe_load(conf.read_text())["spectrogram"]
    params["workers"] = workers
    tracks = pd.DataFrame(
        {
            "track_id": [f"{i:06d}" for i in range(len(paths))],
            "path": paths,
            "genre": "bench",
            "label": 0,
            "split": "training",
        }
    )
    catalog = DataCatalog(
        {
            "tracks": MemoryDataset(tracks),
            "params:spectrogram": MemoryDataset(params),
            "log_mel_spectrograms": SpectrogramStoreDataset(store),
            "log_mel_spectrogram_store_index": SpectrogramStoreIndexDataset(store),
            "bad_tracks_spectrogram": MemoryDataset(),
        }
    )
    extraction = create_pipeline().to_outputs("log_mel_spectrograms", "bad_tracks_spectrogram")
    start = time.perf_counter()
    SequentialRunner().run(extraction, catalog)
    elapsed = time.perf_counter() - start
    stored = catalog.load("log_mel_spectrograms")
    failed = catalog.load("bad_tracks_spectrogram")
    return {
        "elapsed_s": elapsed,
        "stored": len(stored),
        "failed": len(failed),
        "first": stored["000000"]().tolist() if "000000" in stored else None,
    }


# -- process-tree memory sampling ------------------------------------------------------------
def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return children


def _memory_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return 0


def tree_memory_kib(root: int) -> int:
    children = _children_map()
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _memory_kib(pid)
        stack.extend(children.get(pid, ()))
    return total


def run_side(args: list[str]) -> tuple[dict, float]:
    """Run this script as a child with ``args``; returns its JSON result and peak tree MiB."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "PYTHONWARNINGS": "ignore"}
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = handle.name
    child = subprocess.Popen(
        [sys.executable, __file__, *args, "--result", result_path],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_memory_kib(child.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = child.communicate()
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"benchmark side {args[:2]} failed:\n{stderr[-3000:]}")
    result = json.loads(Path(result_path).read_text())
    os.unlink(result_path)
    return result, peak / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # 192 ~ the demo's size: small enough for a few minutes, large enough that the workers'
    # one-time start (imports, librosa's numba warm-up) does not dominate as it would at 48.
    parser.add_argument("--n", type=int, default=192, help="tracks (default %(default)s)")
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    parser.add_argument(
        "--audio-dir",
        default=str(Path(tempfile.gettempdir()) / "music-genre-benchmark-audio"),
        help="where the synthesized MP3 files are kept between runs (default %(default)s)",
    )
    parser.add_argument("--side", choices=["study", "pipeline"], help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--sample", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.side:  # a child process
        paths = json.loads(Path(args.paths).read_text())
        if args.side == "study":
            result = study_side(paths, args.sample)
        else:
            result = pipeline_side(paths, args.store, args.workers)
        Path(args.result).write_text(json.dumps(result))
        return 0

    n = args.n
    audio_dir = Path(args.audio_dir)
    paths = prepare_audio(audio_dir, n)
    paths_4n = replicate(paths, 4, audio_dir / "links")
    work = Path(tempfile.mkdtemp(prefix="spectrogram-bench-"))
    try:
        lists = {}
        for name, items in (("n", paths), ("4n", paths_4n)):
            lists[name] = work / f"paths_{name}.json"
            lists[name].write_text(json.dumps(items))
        print(
            f"cores: {os.cpu_count()}, workers: {args.workers or 'all'}, "
            f"load average before: {os.getloadavg()[0]:.2f}",
            flush=True,
        )

        study, study_mem = run_side(
            [
                "--side",
                "study",
                "--paths",
                str(lists["n"]),
                "--sample",
                str(work / "study_first.npy"),
            ]
        )
        print(
            f"study loop, {n} tracks, 1 process: {study['elapsed_s']:.2f} s "
            f"({study['elapsed_s'] / n * 1000:.0f} ms/track), peak memory {study_mem:.0f} MiB",
            flush=True,
        )
        extra = ["--workers", str(args.workers)] if args.workers else []
        runs = {}
        for name, count in (("n", n), ("4n", 4 * n)):
            store = work / f"store_{name}"
            result, peak = run_side(
                ["--side", "pipeline", "--paths", str(lists[name]), "--store", str(store), *extra]
            )
            if result["stored"] != count or result["failed"]:
                raise SystemExit(
                    f"pipeline stored {result['stored']}/{count} tracks, {result['failed']} failed"
                )
            runs[name] = (result, peak)
            print(
                f"pipeline, {count} tracks: {result['elapsed_s']:.2f} s "
                f"({result['elapsed_s'] / count * 1000:.0f} ms/track), peak memory "
                f"{peak:.0f} MiB (process + workers, PSS)",
                flush=True,
            )
        reference = np.load(work / "study_first.npy")
        ours = np.asarray(runs["n"][0]["first"], dtype=np.float32)
        print(
            f"max |pipeline - study| on track 0: {np.abs(ours - reference).max():.4f} dB "
            f"(float16 storage)"
        )
        speedup = study["elapsed_s"] / runs["n"][0]["elapsed_s"]
        growth = runs["4n"][1] / runs["n"][1]
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        print(f"speedup={speedup:.2f} memory_growth={growth:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
