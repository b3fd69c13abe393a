"""CNN pipeline: spectrogram stores -> one trained variant per ``cnn.variants`` entry ->
results, plots, MLflow runs."""

import warnings
from collections.abc import Callable, Mapping
from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node, pipeline

from music_genre.config import CnnParams, CnnVariantParams, node_settings, project_parameters

from .nodes import (
    best_cnn_predictions,
    evaluate_cnn,
    report_cnn_results,
    select_cnn_items,
    train_cnn,
)
from .tuning import tune_cnn_hyperparameters

STORES = ["log_mel_spectrograms", "augmented_spectrograms"]
PARAMS = ["params:cnn", "params:augmentation"]


def _for_variant(func: Callable, variant: str) -> Callable:
    """``func`` with its ``variant`` argument bound (keeping its name for logs and kedro-viz)."""
    return update_wrapper(partial(func, variant=variant), func)


def variant_pipeline(variant: str, tuned: bool) -> Pipeline:
    """One variant: [Hyperband ->] training -> evaluation, in the namespace ``variant``: its
    outputs are ``<variant>.cnn_model``, ``<variant>.cnn_evaluation``, ... (dataset factories
    in the catalog); the items, stores and parameters are shared."""
    nodes = []
    training_inputs = ["cnn_items", *STORES, *PARAMS]
    if tuned:
        nodes.append(
            node(
                _for_variant(tune_cnn_hyperparameters, variant),
                inputs=["cnn_items", *STORES, *PARAMS],
                outputs="cnn_best_hyperparameters",
                name="tune",
            )
        )
        training_inputs.append("cnn_best_hyperparameters")
    nodes += [
        node(
            _for_variant(train_cnn, variant),
            inputs=training_inputs,
            outputs=["cnn_model", "cnn_training_log"],
            name="train",
        ),
        node(
            _for_variant(evaluate_cnn, variant),
            inputs=[
                "cnn_model",
                "cnn_training_log",
                "cnn_items",
                "log_mel_spectrograms",
                "params:cnn",
            ],
            outputs=["cnn_evaluation", "cnn_confusion_matrix", "cnn_learning_curves"],
            name="evaluate",
        ),
    ]
    return pipeline(nodes, namespace=variant, inputs={"cnn_items", *STORES}, parameters=set(PARAMS))


def create_pipeline(variants: Mapping[str, Any] | None = None, **kwargs) -> Pipeline:
    """``variants``: name -> settings, as ``cnn.variants``; by default the project's
    (:func:`music_genre.config.project_parameters`)."""
    if variants is None:
        variants = node_settings(CnnParams, project_parameters()["cnn"], "cnn").variants
    specs = {name: CnnVariantParams.model_validate(spec) for name, spec in variants.items()}
    select = node(
        select_cnn_items,
        inputs=["tracks", *STORES, "params:cnn"],
        outputs=["cnn_items", "cnn_skipped_items"],
        name="select_cnn_items",
    )
    evaluations = [f"{v}.cnn_evaluation" for v in variants]
    # These two read every variant's namespaced outputs (`<variant>.cnn_evaluation`): the dots
    # are the namespaces, which Kedro's warning about dotted names (once per process) is not for.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="One or more dataset names contain '.'")
        report = node(
            report_cnn_results,
            inputs=[*evaluations, *(f"{v}.cnn_model" for v in variants)],
            outputs=["cnn_results", "cnn_mlflow_runs", "cnn_best_model", "cnn_best_model_info"],
            name="report_cnn_results",
        )
        predictions = node(
            best_cnn_predictions,
            inputs=["cnn_best_model_info", *evaluations],
            outputs=["cnn_validation_predictions", "cnn_test_predictions"],
            name="predict_cnn_held_out_tracks",
        )
    variant_pipelines = [variant_pipeline(name, spec.tuned) for name, spec in specs.items()]
    return pipeline([select, *variant_pipelines, report, predictions])
