"""The MLflow Model Registry: each pipeline's selected model, and the served genre predictor,
as versions of one registered model, with the alias ``champion`` on the version to use.

Registered models: ``genre_handcrafted``, ``genre_cnn``, ``genre_transfer``, ``genre_fusion``
(each pipeline's chosen configuration, :mod:`music_genre.models.selection`) and ``genre_predictor``
(the serving pipeline's pyfunc, what ``genre-serve`` serves). Every version carries the tags
``run_id``, ``pipeline``, ``test_data`` (a fingerprint of the test track ids and the data
source), ``test_data_source``, ``test_tracks``, ``test_accuracy`` with its 95 % Wilson
interval (``test_ci_low``/``test_ci_high``, ``test_accuracy_95ci``: the metric vocabulary of
:mod:`music_genre.contracts`) and ``alias_reason``.

**The champion rule** (:func:`champion_decision`): a new version becomes ``champion`` when
there is none yet, or when its test accuracy is not lower than the champion's *on the same
test data* (equal fingerprints). Otherwise it gets the alias ``challenger`` (the newest one
that did not win) and the tag ``alias_reason`` says why. On different test data the two
accuracies are not comparable, so the champion never moves automatically: the new version is
the challenger, with the reason naming both fingerprints; promote it by hand once compared
(docs/mlflow-and-registry.md).

The nodes are pure (they compute a *registration request*); the catalog's
:class:`~music_genre.datasets.mlflow_registry.MlflowRegisteredModelDataset` registers it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from music_genre.contracts import (
    FUSION,
    MODEL_KINDS,
    TEST_ACCURACY,
    TEST_CI_HIGH,
    TEST_CI_LOW,
    TEST_TRACKS,
)
from music_genre.models.evaluation import format_interval, wilson_interval

# pipeline -> registered model name
REGISTERED_NAMES = {
    "handcrafted": "genre_handcrafted",
    "cnn": "genre_cnn",
    "transfer": "genre_transfer",
    "fusion": "genre_fusion",
    "serving": "genre_predictor",
}
# the runs index each pipeline writes (catalog)
RUNS_DATASETS = {
    "handcrafted": "handcrafted_mlflow_runs",
    "cnn": "cnn_mlflow_runs",
    "transfer": "transfer_mlflow_runs",
    "fusion": "fusion_mlflow_runs",
    "serving": "genre_predictor_mlflow_runs",
}
# the pipelines whose selected model is registered (the three kinds and fusion)
REGISTERED_KINDS = (*MODEL_KINDS, FUSION)
CHAMPION, CHALLENGER = "champion", "challenger"


def data_source(ingestion: dict[str, Any]) -> str:
    """Which collection the tracks come from (``fma:data/01_raw/demo small``), from
    ``params:ingestion``; a split file is part of it."""
    if ingestion.get("source") == "folder":
        source = f"folder:{ingestion.get('folder')}"
    else:
        source = f"fma:{ingestion.get('fma_root')} {ingestion.get('subset')}"
    if ingestion.get("split_file"):
        source += f" split:{ingestion['split_file']}"
    return source


def data_fingerprint(track_ids: Any, source: str) -> str:
    """16 hex digits over the data source and the sorted test track ids: two models with the
    same fingerprint were tested on the same tracks of the same collection."""
    ids = sorted(str(t) for t in track_ids)
    digest = hashlib.sha256("\n".join([source, *ids]).encode())
    return digest.hexdigest()[:16]


def tested_on_tags(test_predictions: pd.DataFrame, source: str) -> dict[str, str]:
    """The tags of what a model was tested on: fingerprint, source, track count, accuracy
    (label == predicted) with its 95 % Wilson interval."""
    total = len(test_predictions)
    correct = int((test_predictions["label"] == test_predictions["predicted"]).sum())
    accuracy = correct / total if total else float("nan")
    low, high = wilson_interval(correct, total)
    return {
        "test_data": data_fingerprint(test_predictions["track_id"], source),
        "test_data_source": source,
        TEST_TRACKS: str(total),
        TEST_ACCURACY: f"{accuracy:.6f}",
        TEST_CI_LOW: f"{low:.6f}",
        TEST_CI_HIGH: f"{high:.6f}",
        "test_accuracy_95ci": format_interval(accuracy, low, high),
    }


def _skipped(name: str, pipeline: str, reason: str) -> dict[str, Any]:
    return {"name": name, "pipeline": pipeline, "skipped": reason}


def registration_request(
    pipeline: str,
    runs: pd.DataFrame | None,
    test_predictions: pd.DataFrame | None,
    ingestion: dict[str, Any],
) -> dict[str, Any]:
    """What to register for ``pipeline``: its selected run's logged model, with the tags of
    the data it was tested on (``test_predictions``: the selected model's per-track test
    predictions). ``skipped`` (with the reason) when there is nothing to register."""
    name = REGISTERED_NAMES[pipeline]
    if runs is None or runs.empty or "selected" not in runs:
        return _skipped(name, pipeline, "no runs index with a selected run")
    chosen = runs[runs["selected"].map(lambda v: str(v).lower() == "true")]
    if chosen.empty:
        return _skipped(name, pipeline, "no run is marked selected")
    row = chosen.iloc[0]
    model_uri = row.get("model_uri")
    if model_uri is None or pd.isna(model_uri) or not str(model_uri):
        return _skipped(
            name,
            pipeline,
            f"the selected run {row['run_id']} logged no model (log_models, or a "
            "configuration without a model of its own)",
        )
    if test_predictions is None or test_predictions.empty:
        return _skipped(name, pipeline, "no test predictions of the selected model")
    return {
        "name": name,
        "pipeline": pipeline,
        "run_id": str(row["run_id"]),
        "run_name": str(row["run_name"]),
        "model_uri": str(model_uri),
        "tags": {
            "run_id": str(row["run_id"]),
            "run_name": str(row["run_name"]),
            "pipeline": pipeline,
            **tested_on_tags(test_predictions, data_source(ingestion)),
        },
    }


def serving_registration_request(
    runs: pd.DataFrame | None, ingestion: dict[str, Any], **test_predictions: Any
) -> dict[str, Any]:
    """The served genre predictor's request: tested on what the model kind it packages was
    tested on (``<kind>_test_predictions``)."""
    kind = None
    if runs is not None and not runs.empty and "param.model_kind" in runs:
        kind = str(runs["param.model_kind"].iloc[0])
    predictions = test_predictions.get(f"{kind}_test_predictions")
    request = registration_request("serving", runs, predictions, ingestion)
    if "tags" in request:
        request["tags"]["model_kind"] = str(kind)
    return request


def champion_decision(
    new: dict[str, str], champion: dict[str, str] | None, champion_version: str | None = None
) -> tuple[str, str]:
    """(alias, reason) for a new version with tags ``new`` against the current champion's tags
    (``None``: no champion yet). The rule of this module's docstring."""
    if champion is None:
        return CHAMPION, "first version: no champion yet"
    who = f"champion v{champion_version}" if champion_version else "the champion"
    mine, theirs = new.get("test_data"), champion.get("test_data")
    if mine != theirs:
        return CHALLENGER, (
            f"tested on other data ({mine}) than {who} ({theirs}): accuracies not comparable, "
            "the champion stays; promote by hand after comparing them on the same tracks"
        )
    accuracy, best = float(new[TEST_ACCURACY]), float(champion[TEST_ACCURACY])
    if accuracy >= best:
        return CHAMPION, (
            f"not worse than {who} on the same test data ({mine}): {accuracy:.4f} >= {best:.4f}"
        )
    return CHALLENGER, (
        f"worse than {who} on the same test data ({mine}): {accuracy:.4f} < {best:.4f}"
    )


def registration_pipeline(pipeline_name: str):
    """The node that registers ``pipeline_name``'s selected model (added to that pipeline by
    the pipeline registry, so ``kedro run --pipelines=<name>`` registers it too)."""
    from functools import partial, update_wrapper

    from kedro.pipeline import Pipeline, node

    output = f"{pipeline_name}_registered_model"
    if pipeline_name == "serving":
        return Pipeline(
            [
                node(
                    serving_registration_request,
                    inputs={
                        "runs": RUNS_DATASETS["serving"],
                        "ingestion": "params:ingestion",
                        **{
                            f"{k}_test_predictions": f"{k}_test_predictions"
                            for k in REGISTERED_KINDS
                        },
                    },
                    outputs=output,
                    name="register_genre_predictor",
                )
            ]
        )
    func = update_wrapper(partial(registration_request, pipeline_name), registration_request)
    return Pipeline(
        [
            node(
                func,
                inputs=[
                    RUNS_DATASETS[pipeline_name],
                    f"{pipeline_name}_test_predictions",
                    "params:ingestion",
                ],
                outputs=output,
                name=f"register_{pipeline_name}_model",
            )
        ]
    )
