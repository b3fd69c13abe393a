"""``genre-serve``: serve the champion genre predictor of the Model Registry (``make serve``).

Serves ``models:/genre_predictor@champion`` by default, or any ``--model-uri`` (``models:/``
or ``runs:/``), or ``--run-id``'s logged predictor (``--latest``: the newest finished run tagged
``served_model=genre_predictor``), from the project's MLflow store (:mod:`music_genre.tracking`:
``MLFLOW_TRACKING_URI``, else the environment's ``mlflow.yml``). It checks that the model
exists, then replaces itself with ``mlflow models serve``, bound to 127.0.0.1 by default.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from music_genre.tracking import CHAMPION_URI, tracking_uri

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


def model_uri_of(args: argparse.Namespace, tracking: str) -> str | None:
    """The model URI the arguments name: ``--model-uri``, ``--run-id``'s, ``--latest``'s, or
    the registry's champion genre predictor."""
    if args.model_uri:
        return args.model_uri
    if args.run_id:
        return f"runs:/{args.run_id}/model"
    if args.latest:
        run_id = latest_predictor_run_id(tracking)
        return f"runs:/{run_id}/model" if run_id else None
    return CHAMPION_URI


def missing_model(model_uri: str, tracking: str) -> str | None:
    """Why ``model_uri`` cannot be served from ``tracking`` (``None``: it can): a registered
    model or alias that does not exist says which command makes it."""
    if not model_uri.startswith("models:/") or model_uri.startswith("models:/m-"):
        return None  # runs:/..., or a logged model's id: mlflow models serve says what is wrong
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking)
    name, _, alias = model_uri.removeprefix("models:/").partition("@")
    try:
        if alias:
            MlflowClient().get_model_version_by_alias(name, alias)
        else:
            MlflowClient().get_registered_model(name.split("/")[0])
    except MlflowException:
        return (
            f"no {model_uri} in {tracking} yet: run `make run` (or `kedro run`, which "
            "includes the serving pipeline and registers its predictor) first"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genre-serve", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: MLFLOW_TRACKING_URI, else the project's mlflow.yml)",
    )
    parser.add_argument(
        "--env", default=os.environ.get("KEDRO_ENV"), help="Kedro environment of mlflow.yml"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model-uri", help=f"any models:/ or runs:/ URI (default: {CHAMPION_URI})")
    which.add_argument("--run-id", help="serve this run's logged genre predictor")
    which.add_argument(
        "--latest", action="store_true", help="the newest run's predictor, registered or not"
    )
    args = parser.parse_args(argv)
    uri = args.tracking_uri or tracking_uri(".", args.env)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        print(
            f"genre-serve: no MLflow store at {uri}: run `make run` (or `kedro run`) first",
            file=sys.stderr,
        )  # noqa: T201
        return 1
    model_uri = model_uri_of(args, uri)
    problem = (
        "no genre predictor logged yet: run `make run` (or `kedro run`) first"
        if model_uri is None
        else missing_model(model_uri, uri)
    )
    if problem:
        print(f"genre-serve: {problem}", file=sys.stderr)  # noqa: T201
        return 1
    print(
        f"genre-serve: serving {model_uri} on http://{args.host}:{args.port}/invocations",
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
        model_uri,
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
