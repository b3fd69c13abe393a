"""A tiny Kedro pipeline with both of the project's process pools, run by the Kedro runner named
on the command line; started as a separate process by tests/test_runners.py.

``python -m tests.helpers.runner_pipeline RUNNER MARKS_DIR``: one node runs a per-track stage
(:func:`music_genre.infra.parallel.run_tasks`, 2 workers), one a grid search with ``n_jobs=2`` (the
transfer pipeline's :func:`~music_genre.infra.parallel.grid_search_backend`), side by side, and a
third combines them. Each node writes the time it ended into MARKS_DIR (from whatever process
ran it); the last line printed is JSON: when ``runner.run`` returned, and the results.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def square(value: int) -> int:
    return value * value


def _mark(marks: str, name: str) -> None:
    (Path(marks) / name).write_text(repr(time.time()))


def per_track_stage(count: int, marks: str) -> int:
    from music_genre.infra.parallel import run_tasks

    results = dict(run_tasks(square, [(str(i), (i,)) for i in range(count)], 2))
    _mark(marks, "per_track_stage")
    return sum(results.values())


def grid_search_stage(marks: str) -> float:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    from music_genre.infra.parallel import grid_search_backend

    x, y = make_classification(n_samples=120, n_features=6, random_state=0)
    search = GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0]}, cv=2, n_jobs=2)
    with grid_search_backend():
        search.fit(x, y)
    _mark(marks, "grid_search_stage")
    return float(search.best_score_)


def combine(total: int, score: float, marks: str) -> dict:
    _mark(marks, "combine")
    return {"per_track": total, "grid_score": score}


def main(runner_name: str, marks: str) -> None:
    from kedro.io import DataCatalog, SharedMemoryDataCatalog
    from kedro.pipeline import Pipeline, node
    from kedro.runner import ParallelRunner, SequentialRunner, ThreadRunner

    runners = {
        "SequentialRunner": SequentialRunner,
        "ParallelRunner": lambda: ParallelRunner(max_workers=2),
        "ThreadRunner": lambda: ThreadRunner(max_workers=2),
    }
    runner = runners[runner_name]()
    pipeline = Pipeline(
        [
            node(per_track_stage, ["count", "marks"], "total", name="per_track_stage"),
            node(grid_search_stage, "marks", "score", name="grid_search_stage"),
            node(combine, ["total", "score", "marks"], "result", name="combine"),
        ]
    )
    catalog = SharedMemoryDataCatalog() if runner_name == "ParallelRunner" else DataCatalog()
    catalog["count"] = 12
    catalog["marks"] = marks
    outputs = runner.run(pipeline, catalog)
    returned = time.time()
    result = outputs["result"].load()
    print(json.dumps({"returned": returned, "result": result}), flush=True)  # noqa: T201


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
