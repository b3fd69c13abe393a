# Over 400 lines: the transfer pipeline's nodes, planning to held-out predictions (the classifier search: search.py).
"""Transfer learning (study section 4.3, Tables 7-13): pretrained CNN features of the spectrogram
images at several cut levels -> StandardScaler -> PCA -> grid-searched SVM / MLP.

Beyond the study, backbones with their own audio front end (musicnn, music-pretrained) read each
track's audio file instead of the spectrogram image; their features then go through the same
scaling -> PCA -> classifier grid, report and MLflow runs."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from music_genre import contracts
from music_genre.config import TransferParams, node_settings
from music_genre.contracts import (
    CV_ACCURACY,
    CV_ACCURACY_STD,
    TEST_ACCURACY,
    TEST_CI_HIGH,
    TEST_CI_LOW,
    TEST_TRACKS,
)
from music_genre.datasets.feature_store import (
    FeatureBatch,
    FeatureManifest,
    FeatureStore,
    stored_with,
)
from music_genre.models.backbones import (
    AudioEmbeddingExtractor,
    AudioWindow,
    CutLevelFeatureExtractor,
    ImageSettings,
    WeightsChoice,
    get_backbone,
    resolve_weights,
)
from music_genre.models.evaluation import (
    prediction_table,
)
from music_genre.models.plots import confusion_matrix_figure
from music_genre.models.selection import select_best

from .extraction import AudioEmbeddingJob, CutLevelFeatureJob, run_job, store_digests
from .search import (
    _check_splits,
    _classifier_grids,
    _fold_cache,
    _grid_search,
    _usable_tracks,
)

logger = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "backbone",
    "cut_level",
    "feature_size",
    "pca_variance",
    "n_components",
    "classifier",
    "best_params",
    CV_ACCURACY,
    CV_ACCURACY_STD,
    TEST_ACCURACY,
    TEST_CI_LOW,
    TEST_CI_HIGH,
    TEST_TRACKS,
    "weights",
    "extract_ms_per_image",
    "classify_ms_per_image",
]
EXCLUDED_COLUMNS = ["track_id", "path", "genre", "split", "stage", "reason"]
TRAIN_SPLITS = ("training", "validation")  # merged for the grid search, as in the study
TEST_SPLIT = "test"


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


# What a node receives as ``params:transfer``: Kedro's dict, or the validated model.
Params = Mapping[str, Any] | TransferParams


def _settings(params: Params) -> TransferParams:
    return node_settings(TransferParams, params)


def experiments(params: Params) -> list[dict[str, Any]]:
    """The (backbone, cut level, PCA variances) combinations to evaluate; an experiment without
    its own variances takes ``transfer.pca_variances``."""
    settings = _settings(params)
    return [
        {
            "backbone": row.backbone,
            "cut_level": row.cut_level,
            "pca_variances": list(row.pca_variances or settings.pca_variances),
        }
        for row in settings.experiments
    ]


def cut_levels_by_backbone(params: Params) -> dict[str, tuple[str, ...]]:
    """Every cut level each backbone must produce (extracted together, in one pass)."""
    levels: dict[str, list[str]] = {}
    for row in experiments(params):
        cuts = levels.setdefault(row["backbone"], [])
        if row["cut_level"] not in cuts:
            cuts.append(row["cut_level"])
    return {name: tuple(cuts) for name, cuts in levels.items()}


def image_settings(params: Params) -> ImageSettings:
    return ImageSettings(**_settings(params).image.model_dump())


def audio_window(params: Params) -> AudioWindow:
    """The audio window read by backbones with their own front end (``transfer.audio``)."""
    return AudioWindow(**_settings(params).audio.model_dump())


def weights_choice(params: Params, backbone: str) -> WeightsChoice:
    settings = _settings(params)  # weights is required: the schema names it when missing
    return resolve_weights(settings.weights, backbone, seed=settings.random_seed)


def feature_key(backbone: str, weights: WeightsChoice, inputs: ImageSettings | AudioWindow) -> str:
    """Store key: features from other weights or input preparation never mix."""
    return f"{backbone}__{weights.fingerprint()}__{inputs.fingerprint()}"


def backbone_inputs(params: Params, backbone: str) -> ImageSettings | AudioWindow:
    """How a backbone's input is prepared: the spectrogram image, or the audio window."""
    if get_backbone(backbone).input_kind == "audio":
        return audio_window(params)
    return image_settings(params)


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------


def plan_transfer_features(
    tracks: pd.DataFrame,
    log_mel_spectrograms: Mapping[str, Callable[[], np.ndarray]],
    params: Params,
) -> list[CutLevelFeatureJob | AudioEmbeddingJob]:
    """One extraction job per backbone (store key); :func:`extract_transfer_features` runs
    them."""
    settings = _settings(params)
    image = image_settings(settings)
    window = audio_window(settings)
    levels = cut_levels_by_backbone(settings)
    track_ids = [t for t in tracks["track_id"].astype(str) if t in log_mel_spectrograms]
    if not track_ids and any(get_backbone(b).input_kind != "audio" for b in levels):
        raise ValueError(
            "No track of data/03_primary/tracks.parquet has a log-mel spectrogram: run the "
            "spectrogram pipeline first (kedro run --pipelines=ingestion,spectrogram)."
        )
    known_digests = store_digests(log_mel_spectrograms)
    batch_size, timing_runs = settings.batch_size, settings.timing_runs
    jobs: list[CutLevelFeatureJob | AudioEmbeddingJob] = []
    for backbone, cuts in levels.items():
        spec = get_backbone(backbone)
        weights = weights_choice(settings, backbone)  # bad weights settings fail here, early
        if spec.input_kind == "audio":
            jobs.append(
                AudioEmbeddingJob(
                    key=feature_key(backbone, weights, window),
                    description={
                        "backbone": backbone,
                        "cut_levels": list(cuts),
                        "weights": weights.label,
                        "weights_fingerprint": weights.fingerprint(),
                        "random_seed": weights.seed,
                        "input_kind": "audio",
                        "audio_sample_rate": spec.audio_sample_rate,
                        "audio_duration_s": window.duration_s,
                        "audio_pad_mode": window.pad_mode,
                    },
                    # every track with an audio file, spectrogram or not
                    track_ids=tracks["track_id"].astype(str).tolist(),
                    paths=dict(zip(tracks["track_id"].astype(str), tracks["path"], strict=True)),
                    extractor=AudioEmbeddingExtractor(spec, weights, cuts, window),
                    workers=window.workers,
                    batch_size=batch_size,
                    timing_runs=timing_runs,
                )
            )
            continue
        description = {
            "backbone": backbone,
            "cut_levels": list(cuts),
            "weights": weights.label,
            "weights_fingerprint": weights.fingerprint(),
            "random_seed": weights.seed,
            "image_interpolation": image.interpolation,
            "input_size": list(spec.input_size),
        }
        jobs.append(
            CutLevelFeatureJob(
                key=feature_key(backbone, weights, image),
                description=description,
                track_ids=track_ids,
                spectrograms=log_mel_spectrograms,
                extractor=CutLevelFeatureExtractor(spec, weights, cuts, image),
                batch_size=batch_size,
                timing_runs=timing_runs,
                source_digests=known_digests,
            )
        )
    return jobs


def extract_transfer_features(
    tracks: pd.DataFrame,
    log_mel_spectrograms: Mapping[str, Callable[[], np.ndarray]],
    stored_features: Mapping[str, Mapping[tuple[str, str], frozenset[str]]],
    params: Params,
) -> Iterator[FeatureBatch | FeatureManifest]:
    """Every backbone's features at its cut levels for the tracks the store does not hold yet
    (``stored_features``: the store's index), as write batches, then one manifest per backbone
    (a Kedro generator node: each batch is written as soon as it is computed)."""
    for job in plan_transfer_features(tracks, log_mel_spectrograms, params):
        stored = stored_with(stored_features.get(job.key, {}), job.feature_names)
        yield from run_job(job, stored)


def search_transfer_classifiers(
    tracks: pd.DataFrame, transfer_features: FeatureStore, params: Params
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Grid-search every (backbone, cut level, PCA variance, classifier) on training +
    validation, evaluate the best configuration on test.

    Returns the results (with the fitted pipelines and test predictions) and the tracks left
    out for want of features, with the reason.
    """
    settings = _settings(params)
    image = image_settings(settings)
    window = audio_window(settings)
    folds = settings.cv_folds
    classifiers = _classifier_grids(settings)
    results: list[dict[str, Any]] = []
    excluded: dict[tuple[str, str], dict[str, Any]] = {}
    for exp in experiments(settings):
        backbone, cut = exp["backbone"], exp["cut_level"]
        weights = weights_choice(settings, backbone)
        is_audio = get_backbone(backbone).input_kind == "audio"
        key = feature_key(backbone, weights, window if is_audio else image)
        usable, left_out = _usable_tracks(tracks, transfer_features, key, backbone, is_audio)
        for row in left_out:
            excluded[(row["track_id"], row["stage"])] = row
        train = usable[usable["split"].isin(TRAIN_SPLITS)]
        test = usable[usable["split"] == TEST_SPLIT]
        _check_splits(train, test, folds, backbone)
        x_train = transfer_features.matrix(key, cut, train["track_id"].tolist())
        x_test = transfer_features.matrix(key, cut, test["track_id"].tolist())
        y_train, y_test = train["label"].to_numpy(), test["label"].to_numpy()
        extract_ms = (
            transfer_features.state(key)
            .get("measurements", {})
            .get("extract_ms_per_image", {})
            .get(cut, float("nan"))
        )
        # The scaler and PCA fitted on a fold are cached and reused by every grid point and
        # classifier of that fold (same fits, minus the repeated SVDs); one cache per cut level
        # bounds its disk use (FMA-small, 25,088 features: ~7 GB of scaled folds).
        with _fold_cache(settings) as memory:
            for variance in exp["pca_variances"]:
                for name, (estimator, fixed, grid) in classifiers.items():
                    result = _grid_search(
                        x_train,
                        y_train,
                        x_test,
                        y_test,
                        estimator,
                        fixed,
                        grid,
                        variance,
                        folds,
                        settings,
                        memory,
                    )
                    result.update(
                        backbone=backbone,
                        cut_level=cut,
                        feature_size=int(x_train.shape[1]),
                        pca_variance=variance,
                        classifier=name,
                        weights=weights.label,
                        weights_fingerprint=weights.fingerprint(),
                        random_seed=weights.seed,
                        input_kind="audio" if is_audio else "spectrogram",
                        image_interpolation=None if is_audio else image.interpolation,
                        audio_duration_s=window.duration_s if is_audio else None,
                        audio_pad_mode=window.pad_mode if is_audio else None,
                        extract_ms_per_image=float(extract_ms),
                        test_track_ids=test["track_id"].tolist(),
                    )
                    logger.info(
                        "%s %s pca%.2f (%d comp.) %s: cv %.4f, test %.4f, %s",
                        backbone,
                        cut,
                        variance,
                        result["n_components"],
                        name,
                        result["cv_accuracy"],
                        result["test_accuracy"],
                        result["best_params"],
                    )
                    results.append(result)
    excluded_table = pd.DataFrame(list(excluded.values()), columns=EXCLUDED_COLUMNS)
    if len(excluded_table):
        logger.warning(
            "%d tracks have no transfer features (see transfer_excluded_tracks.csv)",
            excluded_table["track_id"].nunique(),
        )
    return results, excluded_table


def tabulate_transfer_results(search_results: list[dict[str, Any]]) -> pd.DataFrame:
    """The study's Tables 7-13 in one table: one row per (backbone, cut, variance, classifier)."""
    table = pd.DataFrame(
        [{c: r[c] for c in RESULT_COLUMNS} for r in search_results], columns=RESULT_COLUMNS
    )
    for column in (CV_ACCURACY, CV_ACCURACY_STD, TEST_ACCURACY, TEST_CI_LOW, TEST_CI_HIGH):
        table[column] = table[column].round(4)
    for column in ("extract_ms_per_image", "classify_ms_per_image"):
        table[column] = table[column].round(3)
    return table


def _training_audio(result: Mapping[str, Any]) -> str:
    """What the model's features were computed from (MLflow param ``training_audio``)."""
    if result.get("input_kind") == "audio" and result.get("audio_duration_s"):
        return (
            f"{result['backbone']}'s own front end on the first "
            f"{float(result['audio_duration_s']):.2f} s of each file"
        )
    return "the stored log-mel spectrogram (first spectrogram.duration_s of each file) as an image"


def transfer_run_records(
    search_results: list[dict[str, Any]], tracks: pd.DataFrame
) -> list[dict[str, Any]]:
    """One MLflow run per (backbone, cut, variance, classifier), with its fitted pipeline."""
    class_names = contracts.class_names(tracks)
    records = []
    chosen = _best_result(search_results) if search_results else None  # tag `selected`
    for r in search_results:
        title = _title(r)
        figure = confusion_matrix_figure(r["y_test"], r["y_pred"], class_names, title)
        plt.close(figure)  # still saveable; keeps pyplot from accumulating open figures
        records.append(
            {
                "run_name": title,
                "params": {
                    "backbone": r["backbone"],
                    "cut_level": r["cut_level"],
                    "feature_size": r["feature_size"],
                    "weights": r["weights"],
                    "weights_fingerprint": r["weights_fingerprint"],
                    "random_seed": r["random_seed"],
                    "input_kind": r.get("input_kind", "spectrogram"),
                    "image_interpolation": r["image_interpolation"],
                    "audio_duration_s": r.get("audio_duration_s"),
                    "training_audio": _training_audio(r),
                    "pca_variance": r["pca_variance"],
                    "n_components": r["n_components"],
                    "classifier": r["classifier"],
                    "best_params": r["best_params"],
                    "param_grid": r["param_grid"],
                    "cv_folds": r["cv_folds"],
                    "n_train": r["n_train"],
                },
                "metrics": {
                    **{k: r[k] for k in (CV_ACCURACY, CV_ACCURACY_STD, TEST_ACCURACY)},
                    **{k: r[k] for k in (TEST_CI_LOW, TEST_CI_HIGH, TEST_TRACKS)},
                    "extract_ms_per_image": r["extract_ms_per_image"],
                    "classify_ms_per_image": r["classify_ms_per_image"],
                    "convergence_warnings": r["convergence_warnings"],
                },
                "figures": {"confusion_matrix.png": figure},
                "model": r["model"],
                "selected": r is chosen,
                "tags": {
                    "model_family": "transfer",
                    "weights": r["weights"],
                    "backbone": r["backbone"],
                    "cut_level": r["cut_level"],
                    "classifier": r["classifier"],
                },
            }
        )
    return records


def _best_result(search_results: list[dict[str, Any]]) -> dict[str, Any]:
    """The configuration that ``transfer_results`` names best: the rule of
    :mod:`music_genre.models.selection` (CV accuracy; ties: lower ``cv_accuracy_std``, then list order)
    applied to the values rounded as that table holds them, so the saved model and the report
    agree."""
    table = pd.DataFrame(
        {c: [r.get(c) for r in search_results] for c in ("cv_accuracy", "cv_accuracy_std")},
        dtype=float,
    ).round(4)  # as tabulate_transfer_results
    return search_results[select_best(table, "transfer_results") or 0]


def select_best_transfer_model(
    search_results: list[dict[str, Any]], tracks: pd.DataFrame
) -> tuple[dict[str, Any], Figure]:
    """The configuration with the best cross-validation accuracy (test stays held out; ties:
    lower ``cv_accuracy_std``, then list order), as a bundle the prediction command can use,
    and its test confusion matrix."""
    if not search_results:
        raise ValueError("No transfer result to choose from: transfer.experiments is empty.")
    best = _best_result(search_results)
    class_names = contracts.class_names(tracks)
    bundle = {
        "model": best["model"],
        "backbone": best["backbone"],
        "cut_level": best["cut_level"],
        "weights": best["weights"],
        "weights_fingerprint": best["weights_fingerprint"],
        "random_seed": best["random_seed"],
        "image_interpolation": best["image_interpolation"],
        # audio backbones (musicnn): the window each track's embedding was computed from
        "input_kind": best.get("input_kind", "spectrogram"),
        "audio_duration_s": best.get("audio_duration_s"),
        "audio_pad_mode": best.get("audio_pad_mode"),
        "class_names": class_names,
        "classifier": best["classifier"],
        "best_params": best["best_params"],
        "pca_variance": best["pca_variance"],
        "n_components": best["n_components"],
        "feature_size": best["feature_size"],
        "cv_accuracy": best["cv_accuracy"],
        "test_accuracy": best["test_accuracy"],
    }
    figure = confusion_matrix_figure(
        best["y_test"],
        best["y_pred"],
        class_names,
        f"best transfer model ({best['weights']} weights)\n{_title(best)}",
    )
    plt.close(figure)
    logger.info(
        "Best transfer model by CV accuracy: %s (cv %.4f, test %.4f)",
        _title(best),
        best["cv_accuracy"],
        best["test_accuracy"],
    )
    return bundle, figure


def export_best_transfer_backbone(best_model: dict[str, Any]) -> Any:
    """The best model's backbone up to its cut level as ONNX, checked against the Keras
    network: prediction computes the same features without TensorFlow."""
    from music_genre.models.backbones import export_transfer_backbone

    exported = export_transfer_backbone(best_model)
    logger.info(
        "Exported %s %s (%s weights) to ONNX: largest difference to Keras %s of its scale",
        best_model["backbone"],
        best_model["cut_level"],
        best_model["weights"],
        exported.metadata.get("max_abs_difference"),
    )
    return exported


def predict_held_out_tracks(
    search_results: list[dict[str, Any]],
    tracks: pd.DataFrame,
    transfer_features: FeatureStore,
    params: Params,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The best configuration's (by CV accuracy) per-track predictions on validation and on
    test: track_id, label, predicted, one probability per genre.

    The model was refit on training + validation, so its predictions on validation tracks would
    be in-sample. The validation table holds **out-of-fold** predictions instead: the same
    pipeline and best parameters refit on each of the grid search's CV folds (same stratified
    folds) and applied to the held-out fold. SVMs without Platt scaling give a softmax over
    their decision scores, as in prediction."""
    from music_genre.models.probabilities import classifier_probabilities

    if not search_results:
        raise ValueError("No transfer result to choose from: transfer.experiments is empty.")
    settings = _settings(params)
    best = _best_result(search_results)
    backbone, cut = best["backbone"], best["cut_level"]
    is_audio = get_backbone(backbone).input_kind == "audio"
    key = feature_key(
        backbone,
        weights_choice(settings, backbone),
        audio_window(settings) if is_audio else image_settings(settings),
    )
    usable, _ = _usable_tracks(tracks, transfer_features, key, backbone, is_audio)
    train = usable[usable["split"].isin(TRAIN_SPLITS)]
    test = usable[usable["split"] == TEST_SPLIT]
    x_train = transfer_features.matrix(key, cut, train["track_id"].tolist())
    y_train = train["label"].to_numpy()
    names = contracts.class_names(tracks)
    out_of_fold = np.zeros((len(train), len(names)))
    # predict() is what test_accuracy counts (an RBF SVC votes one-vs-one, which can differ from
    # the argmax of its softmax scores on ties)
    out_of_fold_predicted = np.zeros(len(train), dtype=np.int64)
    # GridSearchCV(cv=int) on a classifier uses these folds (stratified, not shuffled).
    folds = StratifiedKFold(n_splits=int(best["cv_folds"]))
    with threadpool_limits(limits=settings.blas_threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for fit_idx, held_idx in folds.split(x_train, y_train):
            model = clone(best["model"]).fit(x_train[fit_idx], y_train[fit_idx])
            scores = classifier_probabilities(model, x_train[held_idx])
            out_of_fold[np.ix_(held_idx, model.classes_)] = scores
            out_of_fold_predicted[held_idx] = model.predict(x_train[held_idx])
    is_val = (train["split"] == "validation").to_numpy()
    validation = prediction_table(
        train["track_id"][is_val],
        y_train[is_val],
        out_of_fold[is_val],
        names,
        out_of_fold_predicted[is_val],
    )
    x_test = transfer_features.matrix(key, cut, test["track_id"].tolist())
    test_scores = np.zeros((len(test), len(names)))
    test_scores[:, best["model"].classes_] = classifier_probabilities(best["model"], x_test)
    return validation, prediction_table(
        test["track_id"], test["label"], test_scores, names, best["model"].predict(x_test)
    )


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def _title(r: Mapping[str, Any]) -> str:
    return (
        f"{r['backbone']} {r['cut_level']} pca{r['pca_variance']:.2f} "
        f"({r['n_components']} comp.) {r['classifier']}"
    )
