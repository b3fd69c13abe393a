"""Benchmark: the per-track stages on this machine's process pool against a Dask LocalCluster of
the same worker count, and what FMA's subsets would cost.

    python benchmarks/scale.py [--n 24] [--rounds 3] [--workers N] [--audio-dir DIR]

1. Writes ``n`` synthesized 30-s stereo 44.1 kHz MP3 files (FMA's format; shared with
   ``benchmarks/spectrogram.py``, reused between runs) and lists them again under 4 names each
   (hard links) for the ``4n`` run.
2. Starts both executors once and keeps them for the whole run - ``runtime.executor: local``
   (the loky pool) and ``dask`` (a ``distributed.LocalCluster`` with ``workers`` single-threaded
   worker processes, reached through ``runtime.address`` like an existing scheduler) - and warms
   each up on 2 other tracks (imports, librosa's numba warm-up).
3. ``rounds`` times, alternating local and Dask: for ``n`` and ``4n`` tracks the spectrogram
   stage (the pipeline's extraction nodes writing to a fresh store through the catalog) and the
   handcrafted extraction (its node, each batch saved to a fresh feature-row store, as the Kedro
   run saves it). Settings are ``conf/base``'s. Each executor's figure is its best round:
   programs sharing the CPU only ever slow a round down, and alternating exposes both
   executors to the same spells of load (one local pass followed by one Dask pass measured
   whatever load each happened to meet: 0.37-0.65 on a loaded machine).
4. The driver's (this process's) peak memory during each Dask pass: its proportional set size,
   sampled every 50 ms (the workers are not the driver and are not counted).

Prints tracks/s per stage, executor and round, the driver's peaks, and a projection table (stage
x FMA subset x worker count -> hours, store size) from the per-track costs measured at ``4n`` on
the local pool. The last line reads ``dask_vs_local=<Dask throughput / local throughput over
both stages at 4n, best rounds> driver_memory_growth=<driver peak at 4n / at n, Dask>``. The
load average is printed so a reader can judge.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spectrogram import _memory_kib, prepare_audio, replicate  # benchmarks/ is on sys.path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# FMA subsets (clips; fma_full: untrimmed tracks averaging ~270 s, i.e. ~9 clips' length).
SUBSETS = {"small": 8_000, "medium": 25_000, "large": 106_574, "full": 106_574}
FULL_LENGTH_FACTOR = 9
WORKER_COUNTS = (2, 16, 64, 256)


def _params(workers: int) -> tuple[dict, dict]:
    """conf/base's settings, with the local pools' size equal to the cluster's."""
    import yaml

    folder = PROJECT_ROOT / "conf" / "base" / "parameters"
    spectrogram = yaml.safe_load((folder / "spectrogram.yml").read_text())["spectrogram"]
    handcrafted = yaml.safe_load((folder / "handcrafted.yml").read_text())["handcrafted"]
    extraction = {**handcrafted["extraction"], "workers": workers}
    return {**spectrogram, "workers": workers}, {
        **handcrafted,
        "source": "extract",
        "extraction": extraction,
    }


def _tracks(paths: list[str]) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "track_id": [f"{i:06d}" for i in range(len(paths))],
            "path": paths,
            "genre": "bench",
            "label": 0,
            "split": "training",
        }
    )


def spectrogram_stage(paths: list[str], store: Path, params: dict) -> int:
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from music_genre.datasets import SpectrogramStoreDataset, SpectrogramStoreIndexDataset
    from music_genre.pipelines.spectrogram import create_pipeline

    catalog = DataCatalog(
        {
            "tracks": MemoryDataset(_tracks(paths)),
            "params:spectrogram": MemoryDataset(params),
            "log_mel_spectrograms": SpectrogramStoreDataset(str(store)),
            "log_mel_spectrogram_store_index": SpectrogramStoreIndexDataset(str(store)),
            "bad_tracks_spectrogram": MemoryDataset(),
        }
    )
    extraction = create_pipeline().to_outputs("log_mel_spectrograms", "bad_tracks_spectrogram")
    SequentialRunner().run(extraction, catalog)
    return len(catalog.load("log_mel_spectrograms"))


def handcrafted_stage(paths: list[str], store: Path, params: dict) -> int:
    from music_genre.datasets import FeatureRowsDataset
    from music_genre.pipelines.handcrafted.nodes import extract_handcrafted_features

    rows = FeatureRowsDataset(str(store))
    for batch in extract_handcrafted_features(_tracks(paths), {}, params):
        rows.save(batch)
    return sum(1 for row in rows.load().values() if not row.failed)


class PeakMemory:
    """This process's peak PSS (MiB) while the block runs, sampled every 50 ms."""

    def __enter__(self) -> PeakMemory:
        self.peak_kib = _memory_kib(os.getpid())
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak_kib = max(self.peak_kib, _memory_kib(os.getpid()))
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    @property
    def mib(self) -> float:
        return self.peak_kib / 1024


def _timed(stage: Callable[..., int], *args: Any) -> tuple[float, int]:
    start = time.perf_counter()
    done = stage(*args)
    return time.perf_counter() - start, done


def _folder_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def measure_pass(
    runtime: dict, params: tuple[dict, dict], sizes: dict[str, list[str]], work: Path
) -> dict[str, dict]:
    """One pass of both stages at every size on one executor (fresh stores each time)."""
    from music_genre.infra import parallel

    spectrogram_params, handcrafted_params = params
    measured: dict[str, dict] = {}
    with parallel.using(runtime):
        for label, paths in sizes.items():
            spec_store, row_store = work / f"{label}-spectrograms", work / f"{label}-rows"
            with PeakMemory() as memory:
                spec_s, spec_done = _timed(spectrogram_stage, paths, spec_store, spectrogram_params)
                rows_s, rows_done = _timed(handcrafted_stage, paths, row_store, handcrafted_params)
            if spec_done != len(paths) or rows_done != len(paths):
                raise SystemExit(
                    f"{runtime['executor']} {label}: {spec_done} spectrograms and {rows_done} "
                    f"feature rows of {len(paths)} tracks"
                )
            measured[label] = {
                "tracks": len(paths),
                "spectrogram_s": spec_s,
                "handcrafted_s": rows_s,
                "driver_peak_mib": memory.mib,
                "spectrogram_mib_per_track": _folder_mib(spec_store) / len(paths),
                "rows_mib_per_track": _folder_mib(row_store) / len(paths),
            }
            shutil.rmtree(spec_store, ignore_errors=True)
            shutil.rmtree(row_store, ignore_errors=True)
    return measured


def best_round(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    """Per size, the round with the least total time (load only ever adds time)."""
    return {
        label: min(
            (r[label] for r in rounds), key=lambda m: m["spectrogram_s"] + m["handcrafted_s"]
        )
        for label in rounds[0]
    }


def projection(per_track_core_s: dict[str, float], per_track_mib: dict[str, float]) -> list[str]:
    lines = [
        "| stage | subset | tracks | store | "
        + " | ".join(f"{w} workers" for w in WORKER_COUNTS)
        + " |",
        "|---|---|---:|---:|" + "---:|" * len(WORKER_COUNTS),
    ]
    for stage, core_s in per_track_core_s.items():
        for subset, tracks in SUBSETS.items():
            # the spectrogram reads a 29.7-s window of any file; handcrafted features take the
            # whole file, ~9 clips' length in fma_full
            factor = FULL_LENGTH_FACTOR if subset == "full" and stage == "handcrafted" else 1
            hours = [tracks * core_s * factor / w / 3600 for w in WORKER_COUNTS]
            store_gib = tracks * per_track_mib[stage] / 1024
            lines.append(
                f"| {stage} | fma_{subset} | {tracks:,} | {store_gib:.1f} GiB | "
                + " | ".join(f"{h:.2f} h" for h in hours)
                + " |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=24, help="tracks (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating passes per executor")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--audio-dir",
        default=str(Path(tempfile.gettempdir()) / "music-genre-benchmark-audio"),
        help="where the synthesized MP3 files are kept between runs (default %(default)s)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # both configure their loggers on import: quiet them after
    import distributed  # noqa: F401
    import kedro.framework.project  # noqa: F401

    for name in ("kedro", "distributed", "music_genre"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")

    audio_dir = Path(args.audio_dir)
    paths = prepare_audio(audio_dir, args.n + 2)
    warmup, base = paths[args.n :], paths[: args.n]
    sizes = {"n": base, "4n": replicate(base, 4, audio_dir / "copies")}
    work = Path(tempfile.mkdtemp(prefix="music-genre-scale-"))
    params = _params(args.workers)
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    runtimes = {
        "local": {"executor": "local"},
        "dask": {"executor": "dask", "address": cluster.scheduler_address},
    }
    passes: dict[str, list[dict[str, dict]]] = {"local": [], "dask": []}
    try:
        for name, runtime in runtimes.items():
            measure_pass(runtime, params, {"warmup": warmup}, work / name)
        for _ in range(args.rounds):
            for name, runtime in runtimes.items():
                passes[name].append(measure_pass(runtime, params, sizes, work / name))
    finally:
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)
    local, dask = best_round(passes["local"]), best_round(passes["dask"])
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, workers: {args.workers}")
    print(
        "| executor | round | tracks | spectrogram tracks/s | handcrafted tracks/s | "
        "driver peak MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, rounds in passes.items():
        for number, measured in enumerate(rounds, start=1):
            for m in measured.values():
                print(
                    f"| {name} | {number} | {m['tracks']} | "
                    f"{m['tracks'] / m['spectrogram_s']:.2f} | "
                    f"{m['tracks'] / m['handcrafted_s']:.2f} | {m['driver_peak_mib']:.0f} |"
                )
    big = local["4n"]
    per_track_core_s = {
        "spectrogram": big["spectrogram_s"] * args.workers / big["tracks"],
        "handcrafted": big["handcrafted_s"] * args.workers / big["tracks"],
    }
    per_track_mib = {
        "spectrogram": big["spectrogram_mib_per_track"],
        "handcrafted": big["rows_mib_per_track"],
    }
    print(
        "measured per track (local, 4n): "
        + ", ".join(f"{k} {v:.2f} core-s" for k, v in per_track_core_s.items())
    )
    print("\n".join(projection(per_track_core_s, per_track_mib)))
    local_s = big["spectrogram_s"] + big["handcrafted_s"]
    dask_s = dask["4n"]["spectrogram_s"] + dask["4n"]["handcrafted_s"]
    growth = max(r["4n"]["driver_peak_mib"] for r in passes["dask"]) / max(
        r["n"]["driver_peak_mib"] for r in passes["dask"]
    )
    print(f"dask_vs_local={local_s / dask_s:.2f} driver_memory_growth={growth:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
