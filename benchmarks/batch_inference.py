"""Files per second of the inference pipeline's functions (music_genre.pipelines.inference)
over the demo's audio, next to a `genre-predict FILE` subprocess per file, in the same run.

    .venv/bin/python benchmarks/batch_inference.py [--model best] [--workers 2] [--cli-files 8]
    (after `make run`: the demo's audio and trained models; --profile writes a pyinstrument
    report of the batch run when pyinstrument is installed)

The batch figure counts from the model loaded to the table written (the worker processes'
start-up included), over every audio file below data/01_raw/demo/fma_small, into a fresh
table (no resume). The CLI loop runs `genre-predict --env demo FILE` once per file over the
first --cli-files files: the per-file start-up a shell loop pays. Last line:
``files_per_s=... cli_loop_files_per_s=...``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", default=str(ROOT / "data/01_raw/demo/fma_small"))
    parser.add_argument("--model", default="best")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--cli-files", type=int, default=8)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    os.chdir(ROOT)
    from music_genre.commands.predict import _kedro_context
    from music_genre.pipelines.inference.library import list_library, load_predictor, run_library

    context = _kedro_context(ROOT, "demo")
    predictor, label = load_predictor(args.model, context.catalog.load, context.params)
    files = [f.path for f in list_library(args.folder) if not f.error]
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        table, _ = run_library(
            predictor,
            label,
            args.folder,
            str(Path(tmp) / "library.parquet"),
            workers=args.workers,
            chunk_size=args.chunk_size,
            progress=False,
        )
        batch_s = time.perf_counter() - started
    if profiler is not None:
        profiler.stop()
        Path("batch_inference_profile.txt").write_text(profiler.output_text(show_all=False))
    errors = int((table["error"] != "").sum())
    print(  # noqa: T201
        f"batch: {len(table)} files ({errors} with an error) in {batch_s:.1f} s with {label}, "
        f"{args.workers} workers"
    )

    subset = files[: args.cli_files]
    started = time.perf_counter()
    for path in subset:
        subprocess.run(
            [str(ROOT / ".venv/bin/genre-predict"), "--env", "demo", "--model", args.model, path],
            check=True,
            capture_output=True,
        )
    cli_s = time.perf_counter() - started
    print(f"cli loop: {len(subset)} files in {cli_s:.1f} s")  # noqa: T201
    print(  # noqa: T201
        f"files_per_s={len(table) / batch_s:.2f} cli_loop_files_per_s={len(subset) / cli_s:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
