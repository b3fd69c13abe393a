"""``genre-demo-data``: write the demo dataset from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from music_genre.demo.fma_layout import generate_demo_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="genre-demo-data", description="Generate a synthetic FMA-style demo dataset (offline)."
    )
    parser.add_argument(
        "--root", default="data/01_raw/demo", help="output folder (default: %(default)s)"
    )
    # 16 x 8 genres (96 training, 16 validation, 16 test tracks): enough for every model to
    # beat chance, small enough that `make run` (generation included) stays within ten
    # minutes on 2 cores
    parser.add_argument("--tracks-per-genre", type=int, default=16)
    parser.add_argument("--duration", type=float, default=30.0, help="clip length in seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    parser.add_argument("--force", action="store_true", help="regenerate even if tracks.csv exists")
    args = parser.parse_args(argv)
    tracks_csv = Path(args.root) / "fma_metadata" / "tracks.csv"
    if tracks_csv.exists() and not args.force:
        print(f"demo dataset already present ({tracks_csv}); use --force to regenerate")
        return 0
    s = generate_demo_dataset(
        args.root, args.tracks_per_genre, args.duration, args.seed, args.workers
    )
    print(
        f"wrote {s['n_mp3_files']} .mp3 files / {s['n_tracks_listed']} tracks.csv rows to {s['root']}"
        f" in {s['elapsed_s']} s ({s['workers']} workers)"
    )
    print("deliberately bad files: " + ", ".join(f"{t:06d}={d}" for t, d in s["bad_files"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
