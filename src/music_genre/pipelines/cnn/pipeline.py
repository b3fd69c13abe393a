"""CNN pipeline: spectrogram stores -> four trained variants -> results, plots, MLflow runs."""

from collections.abc import Callable
from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import (
    VARIANTS,
    best_cnn_predictions,
    evaluate_cnn,
    report_cnn_results,
    select_cnn_items,
    train_cnn,
    tune_cnn_hyperparameters,
)

STORES = ["log_mel_spectrograms", "augmented_spectrograms"]
PARAMS = ["params:cnn", "params:augmentation"]


def _for_variant(func: Callable, variant: str) -> Callable:
    """``func`` with its ``variant`` argument bound (keeping its name for logs and kedro-viz)."""
    return update_wrapper(partial(func, variant=variant), func)


def _variant_nodes(variant: str, tuned: bool) -> list:
    nodes = []
    training_inputs = ["cnn_items", *STORES, *PARAMS]
    if tuned:
        nodes.append(
            node(
                _for_variant(tune_cnn_hyperparameters, variant),
                inputs=["cnn_items", *STORES, *PARAMS],
                outputs=f"{variant}_best_hyperparameters",
                name=f"tune_{variant}",
            )
        )
        training_inputs.append(f"{variant}_best_hyperparameters")
    nodes += [
        node(
            _for_variant(train_cnn, variant),
            inputs=training_inputs,
            outputs=[f"{variant}_model", f"{variant}_training_log"],
            name=f"train_{variant}",
        ),
        node(
            _for_variant(evaluate_cnn, variant),
            inputs=[
                f"{variant}_model",
                f"{variant}_training_log",
                "cnn_items",
                "log_mel_spectrograms",
                "params:cnn",
            ],
            outputs=[
                f"{variant}_evaluation",
                f"{variant}_confusion_matrix",
                f"{variant}_learning_curves",
            ],
            name=f"evaluate_{variant}",
        ),
    ]
    return nodes


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        node(
            select_cnn_items,
            inputs=["tracks", *STORES, "params:cnn"],
            outputs=["cnn_items", "cnn_skipped_items"],
            name="select_cnn_items",
        )
    ]
    for variant, spec in VARIANTS.items():
        nodes += _variant_nodes(variant, spec["tuned"])
    nodes.append(
        node(
            report_cnn_results,
            inputs=[f"{v}_evaluation" for v in VARIANTS] + [f"{v}_model" for v in VARIANTS],
            outputs=["cnn_results", "cnn_mlflow_runs", "cnn_best_model", "cnn_best_model_info"],
            name="report_cnn_results",
        )
    )
    nodes.append(
        node(
            best_cnn_predictions,
            inputs=["cnn_best_model_info", *[f"{v}_evaluation" for v in VARIANTS]],
            outputs=["cnn_validation_predictions", "cnn_test_predictions"],
            name="predict_cnn_held_out_tracks",
        )
    )
    return pipeline(nodes)
