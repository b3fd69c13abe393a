"""The transfer pipeline's classifier search: the grids per classifier (``ESTIMATORS``), the
usable tracks of a backbone's features, and one cross-validated grid search (PCA, scaling,
classifier) with its timing."""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from joblib import Memory
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from threadpoolctl import threadpool_limits

from music_genre.config import TransferParams
from music_genre.datasets.feature_store import (
    FeatureStore,
)
from music_genre.infra.parallel import current_runtime, grid_search_backend
from music_genre.models.evaluation import (
    interval_columns,
    stopped_at_iteration_limit,
)
from music_genre.models.preprocessing import DropRoundingOnlyFeatures

logger = logging.getLogger(__name__)

# Classifier names in transfer.classifiers -> scikit-learn estimator (the study's three).
ESTIMATORS: dict[str, Callable[..., Any]] = {
    "svm_linear": LinearSVC,
    "svm_rbf": SVC,
    "mlp": MLPClassifier,
}


def _classifier_grids(
    settings: TransferParams,
) -> dict[str, tuple[Callable[..., Any], dict[str, Any], dict[str, list[Any]]]]:
    out: dict[str, tuple[Callable[..., Any], dict[str, Any], dict[str, list[Any]]]] = {}
    for name, conf in settings.classifiers.items():
        fixed = dict(conf.fixed)
        grid = {k: [_tuple_if_list(v) for v in values] for k, values in conf.grid.items()}
        if "random_state" in ESTIMATORS[name]().get_params() and "random_state" not in fixed:
            fixed["random_state"] = settings.random_seed
        out[name] = (ESTIMATORS[name], fixed, grid)
    return out


@contextmanager
def _fold_cache(settings: TransferParams) -> Iterator[Memory | None]:
    """A temporary joblib cache for the pipeline's transformers (``transfer.cache_folds``)."""
    if not settings.cache_folds or current_runtime().executor == "dask":
        # on Dask the folds are fitted on the workers, which cannot reach this temporary folder
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="transfer-fold-cache-") as cache_dir:
        yield Memory(location=cache_dir, verbose=0)


def _tuple_if_list(value: Any) -> Any:
    # YAML has no tuples: hidden_layer_sizes [512, 32] -> (512, 32), as the study wrote them.
    return tuple(value) if isinstance(value, list) else value


def _usable_tracks(
    tracks: pd.DataFrame, store: FeatureStore, key: str, backbone: str, is_audio: bool = False
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    items = store.items(key)
    failures = store.failures(key)
    ids = tracks["track_id"].astype(str)
    has = ids.isin(items)
    left_out = []
    for _, row in tracks[~has].iterrows():
        reason = failures.get(str(row["track_id"])) or (
            "not embedded: the track was added after the last feature extraction"
            if is_audio
            else "no log-mel spectrogram for this track (see the spectrogram pipeline's report)"
        )
        left_out.append(
            {
                "track_id": str(row["track_id"]),
                "path": row.get("path"),
                "genre": row["genre"],
                "split": row["split"],
                "stage": f"transfer features ({backbone})",
                "reason": reason,
            }
        )
    return tracks[has].reset_index(drop=True), left_out


def _check_splits(train: pd.DataFrame, test: pd.DataFrame, folds: int, backbone: str) -> None:
    if test.empty:
        raise ValueError(f"{backbone}: no test track has features; nothing to evaluate on.")
    smallest = train["genre"].value_counts()
    if train.empty or smallest.min() < folds:
        raise ValueError(
            f"{backbone}: transfer.cv_folds={folds} needs at least {folds} training+validation "
            f"tracks per genre; the smallest genre has {0 if train.empty else smallest.min()} "
            f"({smallest.idxmin() if not train.empty else 'none'}). Lower transfer.cv_folds."
        )


def _grid_search(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    estimator: Callable[..., Any],
    fixed: dict[str, Any],
    grid: dict[str, list[Any]],
    variance: float,
    folds: int,
    settings: TransferParams,
    memory: Memory | None,
) -> dict[str, Any]:
    pipe = Pipeline(
        [
            # features constant up to float32 rounding would be blown up by the scaler
            ("drop_rounding", DropRoundingOnlyFeatures()),
            ("scaler", StandardScaler()),
            ("pca", PCA(n_components=variance, random_state=settings.random_seed)),
            ("clf", estimator(**fixed)),
        ],
        memory=memory,
    )
    search = GridSearchCV(
        pipe,
        {f"clf__{k}": v for k, v in grid.items()},
        # A second "score" counts the fits that hit their iteration limit: computed where the
        # fit ran, so the count holds for any n_jobs and on Dask (warnings raised in worker
        # processes never reach this one).
        scoring={"accuracy": "accuracy", "iteration_limit": stopped_at_iteration_limit},
        refit="accuracy",
        cv=folds,
        # on Dask the cluster's size decides (grid_search_backend: n_jobs=-1 on the cluster)
        n_jobs=None if current_runtime().executor == "dask" else settings.n_jobs,
        error_score="raise",
    )
    with (
        warnings.catch_warnings(),
        threadpool_limits(limits=settings.blas_threads),
        grid_search_backend(),
    ):
        warnings.simplefilter("ignore", ConvergenceWarning)  # counted below instead
        search.fit(x_train, y_train)
    convergence = iteration_limit_fits(search, folds)
    if convergence:
        logger.info(
            "%s: %d of %d fits stopped at their iteration limit (max_iter) without converging",
            estimator.__name__,
            convergence,
            len(search.cv_results_["params"]) * folds + 1,
        )
    best = search.best_estimator_
    best.set_params(memory=None)  # the fold cache is temporary; the saved model must not use it
    y_pred = best.predict(x_test)
    best_index = search.best_index_
    return {
        "model": best,
        "n_components": int(best.named_steps["pca"].n_components_),
        "best_params": _format_params(search.best_params_),
        "param_grid": str(grid),
        "cv_accuracy": float(search.best_score_),
        "cv_accuracy_std": float(search.cv_results_["std_test_accuracy"][best_index]),
        "test_accuracy": float(np.mean(y_pred == y_test)),
        **interval_columns(float(np.mean(y_pred == y_test)), len(y_test)),
        "classify_ms_per_image": _classify_ms(best, x_test[:1], settings.timing_runs),
        "convergence_warnings": convergence,
        "cv_folds": folds,
        "n_train": len(y_train),
        "y_test": y_test,
        "y_pred": y_pred,
    }


def iteration_limit_fits(search: GridSearchCV, folds: int) -> int:
    """Fits of a finished search (every grid point x fold, and the refit) that stopped at the
    iteration limit: the ``convergence_warnings`` column of transfer_results."""
    per_point = np.asarray(search.cv_results_["mean_test_iteration_limit"]) * folds
    return int(np.rint(per_point).sum()) + int(stopped_at_iteration_limit(search.best_estimator_))


def _classify_ms(model: Pipeline, one: np.ndarray, runs: int) -> float:
    """Milliseconds to classify one feature vector (scaler + PCA + classifier), mean of runs."""
    model.predict(one)
    start = time.perf_counter()
    for _ in range(runs):
        model.predict(one)
    return (time.perf_counter() - start) / runs * 1000.0


def _format_params(best_params: Mapping[str, Any]) -> str:
    """``{'C': 10, 'gamma': 0.0001}`` as in the study's tables (without the step prefix)."""
    return str({k.removeprefix("clf__"): v for k, v in sorted(best_params.items())})
