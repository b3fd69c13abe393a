"""Benchmark: the transfer pipeline's grid search (scaler -> PCA -> classifier, k-fold CV) with
one worker process against every core, side by side in one run.

    python benchmarks/grid_search.py [--tracks 216] [--features 512] [--folds 3]

Generated features (``tracks`` x ``features``, 8 classes with a weak class signal, the demo's
size by default) go through the project's own ``_grid_search`` for each classifier of
``conf/base/parameters/transfer.yml`` (its grids, PCA at 0.90 variance, the fold cache on),
first with ``n_jobs: 1`` then with ``n_jobs: -1``. It checks that both give the same CV
accuracy and the same count of fits at their iteration limit, and prints seconds per
classifier. The last line reads ``grid_search_parallel_speedup=<seconds n_jobs 1 / n_jobs -1>
cores=<n>``. Other programs using the CPU slow both sides; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from music_genre.pipelines.transfer import search  # noqa: E402


def _data(tracks: int, features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(tracks) % 8
    centres = rng.normal(size=(8, features))
    x = rng.normal(size=(tracks, features)) + 0.4 * centres[y]
    test = rng.normal(size=(24, features)) + 0.4 * centres[np.arange(24) % 8]
    return x.astype(np.float32), y, test.astype(np.float32), np.arange(24) % 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=216)
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--folds", type=int, default=3)
    args = parser.parse_args()
    params = yaml.safe_load((ROOT / "conf/base/parameters/transfer.yml").read_text())["transfer"]
    x, y, x_test, y_test = _data(args.tracks, args.features)
    totals = {}
    rows = []
    outcomes = {}
    for n_jobs in (1, -1):
        run_params = {**params, "n_jobs": n_jobs}
        totals[n_jobs] = 0.0
        for name, (estimator, fixed, grid) in search._classifier_grids(run_params).items():
            with search._fold_cache(run_params) as memory:
                start = time.perf_counter()
                result = search._grid_search(
                    x, y, x_test, y_test, estimator, fixed, grid, 0.90, args.folds,
                    run_params, memory,
                )  # fmt: skip
                seconds = time.perf_counter() - start
            totals[n_jobs] += seconds
            outcomes[(n_jobs, name)] = (result["cv_accuracy"], result["convergence_warnings"])
            rows.append((name, n_jobs, seconds, *outcomes[(n_jobs, name)]))
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    print(f"{'classifier':<12} {'n_jobs':>6} {'seconds':>8} {'cv acc':>7} {'at limit':>8}")
    for name, n_jobs, seconds, accuracy, at_limit in rows:
        print(f"{name:<12} {n_jobs:>6} {seconds:>8.2f} {accuracy:>7.4f} {at_limit:>8}")
    for (n_jobs, name), outcome in outcomes.items():
        if n_jobs == -1 and outcome != outcomes[(1, name)]:
            raise SystemExit(f"{name}: n_jobs -1 gave {outcome}, n_jobs 1 {outcomes[(1, name)]}")
    print(
        f"grid_search_parallel_speedup={totals[1] / totals[-1]:.2f} cores={os.cpu_count()}",
    )


if __name__ == "__main__":
    main()
