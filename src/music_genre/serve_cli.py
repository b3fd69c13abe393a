"""``genre-serve``: serve the genre predictor that the last ``kedro run`` logged (``make serve``).

Finds the newest MLflow run tagged ``served_model=genre_predictor`` in the project's store
through the MLflow API, then replaces itself with ``mlflow models serve`` on that run's model,
bound to 127.0.0.1 by default.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SERVED_TAG = "served_model"
SERVED_VALUE = "genre_predictor"  # set by the serving pipeline (pipelines/serving/nodes.py)


def latest_predictor_run_id(tracking_uri: str) -> str | None:
    """The id of the newest run that logged the served genre predictor, or None."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.{SERVED_TAG} = '{SERVED_VALUE}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return None if runs.empty else str(runs["run_id"].iloc[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genre-serve", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: MLFLOW_TRACKING_URI or ./mlflow.db)",
    )
    parser.add_argument("--run-id", help="serve this run's model instead of the newest")
    args = parser.parse_args(argv)
    uri = (
        args.tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or (f"sqlite:///{Path('mlflow.db').resolve().as_posix()}")
    )
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        print(
            f"genre-serve: no MLflow store at {uri}: run `make run` (or `kedro run`) first",
            file=sys.stderr,
        )  # noqa: T201
        return 1
    run_id = args.run_id or latest_predictor_run_id(uri)
    if not run_id:
        print(
            f"genre-serve: no genre predictor logged in {uri} yet: run `make run` (or "
            "`kedro run`, which includes the serving pipeline) first",
            file=sys.stderr,
        )  # noqa: T201
        return 1
    print(
        f"genre-serve: serving run {run_id} on http://{args.host}:{args.port}/invocations",
        file=sys.stderr,
    )  # noqa: T201
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        # the scoring server starts `uvicorn` from the environment's bin folder
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }
    command = [
        os.path.join(bin_dir, "mlflow"),
        "models",
        "serve",
        "-m",
        f"runs:/{run_id}/model",
        "--env-manager",
        "local",
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    os.execve(command[0], command, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
