"""``genre-predict``: the genre of any audio file, from the trained models of this project.

genre-predict song.mp3 other.wav                 # best model, top-3 genres per file
genre-predict --model cnn --json song.mp3
genre-predict --model-uri song.mp3              # the registry's champion genre predictor
genre-predict --model-uri models:/genre_predictor/3 song.mp3  # any models:/ or runs:/ URI
genre-predict --run-id <mlflow run id> song.mp3  # a served/logged genre predictor
genre-predict --tags song.mp3                    # also musicnn's top MSD tags
genre-predict /music --output predictions.csv    # every audio file below a folder (resumable)

The CNN, the handcrafted MLP and the transfer model's backbone (musicnn; VGG16/ResNet50 still
need TensorFlow to prepare their images) run from their ONNX exports (ONNX Runtime): the
command then never imports TensorFlow or MLflow. ``--json`` carries each file's timing
(milliseconds) and, for a handcrafted model (or fusion with one), ``features_computed_over``:
what the file's features were computed over next to what the model was trained on, with a
``warning`` when that is another kind of audio (a clip given to a whole-track model).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before the imports: start-up time counts them

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import click  # noqa: E402

# Before Kedro is imported (it reads this once): the project's conf/logging.yml logs INFO to
# stdout, and stdout must hold only the predictions.
os.environ.setdefault("KEDRO_LOGGING_CONFIG", str(Path(__file__).with_name("cli_logging.yml")))

from music_genre.contracts import FUSION, MODEL_KINDS  # noqa: E402
from music_genre.infra.location import is_url, local_path, url_to_fs  # noqa: E402
from music_genre.serving import (  # noqa: E402
    MODEL_REPEATS,
    GenrePrediction,
    PredictionError,
    best_model_kind,
    build_predictor,
    check_audio_file,
    predict_file,
)
from music_genre.tracking import CHAMPION_URI  # noqa: E402

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genre-predict", description=__doc__.split("\n")[0])
    parser.add_argument(
        "files", nargs="+", help="audio files (mp3, wav, flac, ogg, au), or with --output a folder"
    )
    parser.add_argument(
        "--model",
        default="best",
        choices=("best", *MODEL_KINDS, FUSION),
        help="which trained model (default: best held-out accuracy; fusion combines the three)",
    )
    parser.add_argument(
        "--runtime",
        default="auto",
        choices=("auto", "keras"),
        help="auto: the ONNX export of the CNN/MLP or the transfer backbone where valid, else "
        "the Keras model (logged); keras: always the Keras model (TensorFlow start-up)",
    )
    parser.add_argument("--run-id", help="use the genre predictor logged in this MLflow run")
    parser.add_argument(
        "--model-uri",
        nargs="?",
        const=CHAMPION_URI,
        help=f"use this logged genre predictor: a models:/ or runs:/ URI (alone: {CHAMPION_URI}"
        "); the store: MLFLOW_TRACKING_URI, else the project's mlflow.yml",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--top", type=int, default=3, help="genres to show per file")
    parser.add_argument(
        "--tags", action="store_true", help="also print musicnn's top Million Song Dataset tags"
    )
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=3.0,
        help="shortest clip classified (shorter ones are padded, as in training)",
    )
    parser.add_argument(
        "--max-windows", type=int, default=10, help="29.7-s windows averaged for long files"
    )
    parser.add_argument(
        "--env",
        default=os.environ.get("KEDRO_ENV"),
        help="Kedro configuration environment (default: base + local)",
    )
    parser.add_argument("--project", default=".", help="project root (default: .)")
    from music_genre.pipelines.inference.cli import add_arguments

    add_arguments(parser)
    return parser


def tracking_uri(project: Path, env: str | None = None) -> str:
    """The project's MLflow store (:func:`music_genre.tracking.tracking_uri`:
    ``MLFLOW_TRACKING_URI`` wins), as an absolute URI: a relative ``sqlite:///mlflow.db`` would
    create an empty store in whatever folder the command runs from."""
    from music_genre.tracking import tracking_uri as project_tracking_uri

    return project_tracking_uri(project, env)


@dataclass
class ProjectContext:
    catalog: Any
    params: dict[str, Any]


def _kedro_context(project: Path, env: str | None) -> ProjectContext:
    """The project's catalog and parameters, configured as ``kedro run`` configures them but
    without a Kedro session: its hooks would cost seconds this command does not need
    (kedro-mlflow imports MLflow and opens the store; Kedro's parameter validation imports
    every pipeline, hence TensorFlow). The project's parameter schemas are still checked."""
    from kedro.config import MissingConfigException
    from kedro.framework.project import settings
    from kedro.framework.startup import bootstrap_project
    from kedro.io import DataCatalog

    from music_genre.config import (
        InvalidParametersError,
        ParameterError,
        validate_parameters,
    )

    bootstrap_project(project)
    # The catalog's paths are relative to the project, as for `kedro run` (the file
    # arguments were made absolute before).
    os.chdir(project)
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(project / settings.CONF_SOURCE), env=env, **settings.CONFIG_LOADER_ARGS
    )
    params = loader["parameters"]
    try:
        validate_parameters(params)
    except ParameterError as exc:
        raise InvalidParametersError(str(exc)) from None
    try:
        credentials = loader["credentials"]
    except MissingConfigException:
        credentials = {}
    return ProjectContext(DataCatalog.from_config(loader["catalog"], credentials), params)


def _packaged_predictor(args: argparse.Namespace) -> Any:
    """The serving pipeline's packaged best predictor (``PACKAGE_FOLDER``), loaded without
    Kedro, scikit-learn or pandas (0.7 s of start-up less), when it answers this command: the
    default model and runtime, and no trained model newer than the package (else None, the
    reason logged: the catalog's models are loaded instead)."""
    from music_genre.serving.package import (
        MANIFEST,
        PACKAGE_FOLDER,
        PackageError,
        load_package,
        read_manifest,
    )

    if args.model != "best" or args.runtime != "auto":
        return None
    folder = Path(args.project).resolve() / PACKAGE_FOLDER
    try:
        manifest = read_manifest(folder)
    except PackageError as exc:
        logger.info("%s", exc)
        return None
    if manifest.get("chosen_by") != "best":
        logger.info(
            "%s packages serving.model=%s, not the best model", folder, manifest.get("chosen_by")
        )
        return None
    packaged = (folder / MANIFEST).stat().st_mtime
    # every trained model lives in the package's parent folder (the catalog's 06_models layer);
    # hidden entries are the package's own staging folders and .gitkeep
    newer = [
        path
        for path in folder.parent.rglob("*")
        if path.is_file()
        and folder not in path.parents
        and not any(part.startswith(".") for part in path.relative_to(folder.parent).parts)
        and path.stat().st_mtime > packaged
    ]
    if newer:
        logger.warning(
            "genre-predict: %s is newer than the packaged predictor %s; using the trained "
            "models (slower start-up). `kedro run --pipeline=serving` packages them again.",
            newer[0],
            folder,
        )
        return None
    return load_package(folder)


def _predict_with_catalog(args: argparse.Namespace) -> tuple[list[GenrePrediction], float]:
    predictor = _packaged_predictor(args) or _catalog_predictor(args)
    ready = time.perf_counter()
    repeats = MODEL_REPEATS if args.json else 0
    return [
        predict_file(predictor, f, args.min_seconds, args.max_windows, repeats) for f in args.files
    ], ready


def _catalog_predictor(args: argparse.Namespace) -> Any:
    """The trained model ``--model`` names (best: by held-out accuracy), from the catalog."""
    context = _kedro_context(Path(args.project).resolve(), args.env)
    catalog = context.catalog
    kind = args.model
    if kind == "best":
        results = {k: catalog.load(f"{k}_results") for k in MODEL_KINDS}
        kind = best_model_kind(results)
    try:
        predictor = build_predictor(
            kind, catalog.load, context.params, exported=args.runtime == "auto"
        )
    except Exception as exc:
        raise PredictionError(
            f"cannot load the trained {kind} model ({exc}); run `kedro run "
            f"--pipelines={kind}` (or `make run` for the demo) first"
        ) from exc
    return predictor


def read_audio_bytes(location: str) -> bytes:
    """A file's bytes, as a client sends them to the served model (a local path or an fsspec
    URL); a PredictionError naming it when it cannot be read."""
    try:
        if is_url(location):
            fs, key = url_to_fs(location)
            with fs.open(key, "rb") as handle:
                return handle.read()
        path = Path(local_path(location))
        if path.is_dir():
            raise PredictionError(f"{path}: is a directory; pass audio files")
        return path.read_bytes()
    except FileNotFoundError:
        raise PredictionError(f"{location}: file not found") from None
    except OSError as exc:
        raise PredictionError(f"{location}: cannot read it ({exc})") from exc


def _predict_with_mlflow(args: argparse.Namespace) -> tuple[list[GenrePrediction], float]:
    import base64

    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri(Path(args.project), args.env))
    uri = args.model_uri or f"runs:/{args.run_id}/model"
    try:
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        raise PredictionError(
            f"cannot load {uri} ({exc}); run `make run` (or `kedro run`) first"
        ) from exc
    ready = time.perf_counter()
    label = uri if args.model_uri else f"mlflow run {args.run_id}"
    # The logged model takes the files' bytes, as the served one does (it reads no paths).
    predictions: list[GenrePrediction] = []
    rows = {}
    for index, location in enumerate(args.files):
        predictions.append(GenrePrediction(path=location, model=label))
        try:
            rows[index] = base64.b64encode(read_audio_bytes(location)).decode("ascii")
        except PredictionError as exc:
            predictions[index].error = str(exc)
    # as many files per call as the model takes (serving.max_files)
    per_call = int(getattr(model.unwrap_python_model(), "max_files", 16))
    indices = list(rows)
    for start in range(0, len(indices), per_call):
        chunk = indices[start : start + per_call]
        frame = model.predict(
            pd.DataFrame(
                {"audio": [rows[i] for i in chunk], "name": [args.files[i] for i in chunk]}
            )
        )
        genres = [c for c in frame.columns if c not in ("path", "genre", "error")]
        for index, (_, row) in zip(chunk, frame.iterrows(), strict=True):
            if row["error"]:
                predictions[index].error = row["error"]
            else:
                predictions[index].probabilities = {g: float(row[g]) for g in genres}
                predictions[index].windows = 1
    # the served model answers for all files at once: one end-to-end time for the batch
    batch_ms = 1000.0 * (time.perf_counter() - ready)
    for prediction in predictions:
        prediction.timing = {"batch_end_to_end_ms": batch_ms}
    return predictions, ready


def _musicnn_tags(files: list[str], min_seconds: float, k: int = 5) -> dict[str, list]:
    from music_genre.models.musicnn import load_musicnn, musicnn_embeddings, tag_names, top_tags

    model = load_musicnn("MSD_musicnn")
    tags = {}
    for path in files:
        try:
            check_audio_file(path, min_seconds)
            probabilities = musicnn_embeddings(path, model)["tags"]
        except Exception:  # noqa: BLE001, S112 - the genre part already reports the error
            continue
        tags[path] = top_tags(probabilities, tag_names("MSD_musicnn"), k)
    return tags


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # local files made absolute (the command moves to the project folder); URLs as they are
    args.files = [f if is_url(f) else os.path.abspath(local_path(f)) for f in args.files]
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.output:  # a library: the inference pipeline's functions
        from music_genre.pipelines.inference.cli import run

        try:
            return run(args, _kedro_context)
        except click.ClickException as exc:
            print(f"genre-predict: {exc.format_message()}", file=sys.stderr)  # noqa: T201
            return 2
    try:
        predictions, ready = (
            _predict_with_mlflow(args)
            if args.run_id or args.model_uri
            else _predict_with_catalog(args)
        )
    except PredictionError as exc:
        print(f"genre-predict: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except click.ClickException as exc:  # the project's configuration (parameters) is wrong
        print(f"genre-predict: {exc.format_message()}", file=sys.stderr)  # noqa: T201
        return 2
    tags = _musicnn_tags(args.files, args.min_seconds) if args.tags else {}

    if args.json:
        out = []
        for p in predictions:
            # start-up: from the command's first line to the model ready (imports,
            # configuration, model load), the same for every file
            p.timing["startup_ms"] = 1000.0 * (ready - STARTED)
            item = p.as_dict(args.top)
            if p.path in tags:
                item["tags"] = [{"tag": t, "probability": round(v, 4)} for t, v in tags[p.path]]
            out.append(item)
        print(json.dumps(out, indent=2))  # noqa: T201
    else:
        for p in predictions:
            if p.error:
                print(f"{p.path}: ERROR {p.error}", file=sys.stderr)  # noqa: T201
                continue
            genres = ", ".join(f"{g} {v:.2f}" for g, v in p.top(args.top))
            print(f"{p.path}: {genres}  [{p.model}, {p.windows} window(s)]")  # noqa: T201
            if p.features_computed_over:
                print(f"    features computed over {p.features_computed_over}")  # noqa: T201
            if p.warning:
                print(f"{p.path}: WARNING {p.warning}", file=sys.stderr)  # noqa: T201
            if p.path in tags:
                listed = ", ".join(f"{t} {v:.2f}" for t, v in tags[p.path])
                print(f"    musicnn tags: {listed}")  # noqa: T201
    # Non-zero only when no file at all could be classified.
    return 1 if all(p.error for p in predictions) else 0


if __name__ == "__main__":
    sys.exit(main())
