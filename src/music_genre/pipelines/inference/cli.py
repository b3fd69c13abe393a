"""``genre-predict DIR --output FILE``: the inference pipeline's functions without a Kedro
session (its hooks and parameter validation of every pipeline cost seconds of start-up)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "a music library (one folder or fsspec URL, searched recursively)"
    )
    group.add_argument(
        "--output",
        help="predict every audio file below the one FOLDER given into this table (.csv or "
        ".parquet), as `kedro run --pipeline=inference` does; a re-run predicts only new or "
        "changed files",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=None,
        help="decoding processes (default: every core)",
    )
    group.add_argument(
        "--chunk-size", type=int, default=32, help="files per network call and per table write"
    )
    group.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace, context: Callable[[Path, str | None], Any]) -> int:
    """Batch mode of genre-predict; ``context(project, env)`` gives the catalog and parameters
    (predict_cli's, configured as ``kedro run`` configures them)."""
    if len(args.files) != 1:
        print(  # noqa: T201
            "genre-predict: --output takes one folder (or fsspec URL) to search for audio files",
            file=sys.stderr,
        )
        return 2
    if not str(args.output).lower().endswith((".csv", ".parquet")):
        print("genre-predict: --output must end in .csv or .parquet", file=sys.stderr)  # noqa: T201
        return 2
    # imported here: genre-predict's parser adds the arguments above at every start-up, and
    # the library's table (pandas) costs 0.3 s that a single file does not need
    from .library import LibraryError, load_predictor, run_library

    output = args.output if "://" in args.output else os.path.abspath(args.output)
    project = Path(args.project).resolve()
    try:
        ctx = context(project, args.env)
        from music_genre.tracking import tracking_uri

        predictor, label = load_predictor(
            args.model,
            ctx.catalog.load,
            ctx.params,
            runtime=args.runtime,
            run_id=args.run_id,
            tracking_uri=tracking_uri(project) if args.run_id else None,
        )
        table, summary = run_library(
            predictor,
            label,
            args.files[0],
            output,
            workers=args.workers,
            min_seconds=args.min_seconds,
            max_windows=args.max_windows,
            chunk_size=args.chunk_size,
            progress=not args.no_progress,
            setting="genre-predict's FOLDER argument",
        )
    except LibraryError as exc:
        print(f"genre-predict: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    print(  # noqa: T201
        f"{output}: {len(table)} file(s); {summary.reused} kept from the stored table, "
        f"{summary.predicted} predicted, {summary.errors} with an error",
        file=sys.stderr,
    )
    return 0
