"""Transfer pipeline: backbone cut-level features, weights handling, and the pipeline end to end
on tiny generated data (in-memory catalog, as in the spaceflights starter's tests)."""

from __future__ import annotations

import json
import os
import random
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from kedro.runner import SequentialRunner  # noqa: E402

from music_genre.config import TransferParams  # noqa: E402
from music_genre.datasets import FeatureStoreDataset  # noqa: E402
from music_genre.models import backbones  # noqa: E402
from music_genre.models.backbones import (  # noqa: E402
    BackboneSpec,
    BackboneWeightsError,
    CutLevelError,
    CutLevelFeatureExtractor,
    WeightsChoice,
    build_backbone,
    get_backbone,
    prepare_images,
    resolve_weights,
)
from music_genre.pipelines.transfer import create_pipeline  # noqa: E402
from music_genre.pipelines.transfer.nodes import (  # noqa: E402
    RESULT_COLUMNS,
    plan_transfer_features,
)
from tests.helpers.numeric import assert_same_network_output  # noqa: E402
from tests.helpers.tiny_backbone import BUILDS, TINY  # noqa: E402
from tests.helpers.transfer_catalog import save_jobs, transfer_catalog  # noqa: E402

SPEC_SHAPE = (128, 160)  # the real (128, 1280) is resized to 224 x 224 anyway; keep tests light


def _spectrograms(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(-40, 15, SPEC_SHAPE).astype(np.float32) for _ in range(n)]


# --------------------------------------------------------------------------------------------
# Real backbones, random initialisation (offline)
# --------------------------------------------------------------------------------------------


@pytest.mark.numeric
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vgg16", {"block5_pool": 7 * 7 * 512, "fc1": 4096, "fc2": 4096}),
        ("resnet50", {"conv5_block1_2_relu": 7 * 7 * 512, "avg_pool": 2048}),
    ],
)
@pytest.mark.slow
def test_cut_level_feature_shapes_with_random_weights(name, expected):
    spec = get_backbone(name)
    assert spec.cut_levels == tuple(expected)
    extractor = CutLevelFeatureExtractor(spec, resolve_weights(None, name, seed=1), spec.cut_levels)
    specs = _spectrograms(2)
    features = extractor(specs)
    assert {cut: f.shape for cut, f in features.items()} == {
        cut: (2, size) for cut, size in expected.items()
    }
    assert extractor.feature_sizes() == expected
    for cut, values in features.items():
        assert values.dtype == np.float32 and np.isfinite(values).all()
        assert not np.allclose(values[0], values[1]), f"{cut}: different images, same features"
    # One multi-output pass gives the same features as a pass per batch of one (another batch
    # shape: other kernels, so up to float32 rounding).
    single = extractor(specs[:1])
    for cut in expected:
        assert_same_network_output(single[cut][0], features[cut][0], extractor.cut_model)


@pytest.mark.numeric
def test_prepared_image_is_the_study_image_in_three_channels():
    spec = get_backbone("vgg16")
    quiet_then_loud = np.full(SPEC_SHAPE, -80.0, dtype=np.float32)
    quiet_then_loud[:, SPEC_SHAPE[1] // 2 :] = 0.0
    images = prepare_images([quiet_then_loud, _spectrograms(1)[0]], spec)
    assert images.shape == (2, 224, 224, 3) and images.dtype == np.float32
    # caffe preprocessing: BGR mean subtraction of a gray image -> channels differ by the means
    means = np.array([103.939, 116.779, 123.68], dtype=np.float32)
    raw = images + means
    np.testing.assert_allclose(raw[..., 0], raw[..., 1], atol=1e-3)
    np.testing.assert_allclose(raw[..., 0], raw[..., 2], atol=1e-3)
    assert raw.min() >= -1e-3 and raw.max() <= 255 + 1e-3
    # the study's image: loud is dark (inverted), quiet is white, 0..255
    np.testing.assert_allclose(raw[0, :, :100], 255.0, atol=1e-3)
    np.testing.assert_allclose(raw[0, :, 124:], 0.0, atol=1e-3)


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


def test_bad_weights_path_gives_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere" / "vgg16.h5"
    with pytest.raises(BackboneWeightsError) as info:
        resolve_weights(str(missing), "vgg16")
    message = str(info.value)
    assert str(missing) in message and "transfer.weights" in message
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in message


def test_incompatible_weights_file_names_the_file(tmp_path, tiny_backbone):
    garbage = tmp_path / "not_weights.h5"
    garbage.write_bytes(b"this is not an HDF5 file")
    weights = resolve_weights(str(garbage), "tinynet")
    assert weights.kind == "file" and weights.label == f"file:{garbage.resolve()}"
    with pytest.raises(BackboneWeightsError, match="not_weights.h5"):
        build_backbone(tiny_backbone, weights)


def test_imagenet_download_failure_says_how_to_supply_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(backbones.weights, "keras_cache_dir", lambda: tmp_path / "keras")

    def offline(weights):
        assert weights == "imagenet"
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- offline")

    spec = BackboneSpec(
        name="vgg16",
        build=offline,
        preprocess=lambda x: x,
        cut_levels=("fc2",),
        imagenet_file="vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        imagenet_url="https://example.invalid/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
    )
    with pytest.raises(BackboneWeightsError) as info:
        build_backbone(spec, WeightsChoice("imagenet"))
    message = str(info.value)
    assert "URL fetch failure" in message
    assert str(tmp_path / "keras" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels.h5") in (
        message
    )
    assert "transfer.weights" in message and "null" in message


def test_weights_settings_are_explicit():
    assert resolve_weights("imagenet", "vgg16") == WeightsChoice("imagenet")
    assert resolve_weights(None, "vgg16", seed=3) == WeightsChoice("random", seed=3)
    assert resolve_weights("null", "vgg16", seed=3).label == "random"  # --params text
    both = {"vgg16": "imagenet", "resnet50": None}
    assert resolve_weights(both, "resnet50").kind == "random"
    with pytest.raises(BackboneWeightsError, match="resnet50"):
        resolve_weights({"vgg16": "imagenet"}, "resnet50")
    with pytest.raises(BackboneWeightsError, match="not understood"):
        resolve_weights(3, "vgg16")


@pytest.mark.numeric
def test_seeded_random_weights_do_not_depend_on_other_threads_drawing_random_numbers():
    """Keras draws its initializers' seeds from Python's global ``random``; a Dask worker's
    event loop draws from it too, which gave the same seed other weights now and then."""
    first = build_backbone(TINY, WeightsChoice("random", seed=3)).get_weights()
    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            random.random()

    thread = threading.Thread(target=draw)
    thread.start()
    try:
        busy = build_backbone(TINY, WeightsChoice("random", seed=3)).get_weights()
    finally:
        stop.set()
        thread.join()
    assert len(busy) == len(first) == 6
    for built, expected in zip(busy, first, strict=True):
        np.testing.assert_array_equal(built, expected)


@pytest.mark.parametrize(
    "choice",
    [
        WeightsChoice("imagenet"),
        WeightsChoice("random", seed=3),
        WeightsChoice("file", path="/models/vgg16 weights.h5"),
        WeightsChoice("msd"),
    ],
)
def test_a_stored_weights_label_gives_back_the_same_choice(choice):
    assert WeightsChoice.from_label(choice.label, seed=choice.seed) == choice


# --------------------------------------------------------------------------------------------
# The pipeline on tiny data, with a tiny registered backbone (fast and offline)
# --------------------------------------------------------------------------------------------

GENRES = ["Folk", "Hip-Hop", "Rock"]


@pytest.fixture
def tiny_backbone(monkeypatch):
    monkeypatch.setitem(backbones.BACKBONES, "tinynet", TINY)
    BUILDS.clear()
    return TINY


def _tiny_data(per_genre: int = 15):
    """Tracks whose spectrogram has a bright band at a genre-specific height."""
    rng = np.random.default_rng(0)
    rows, specs = [], {}
    for label, genre in enumerate(GENRES):
        for i in range(per_genre):
            track_id = f"9{label}{i:04d}"
            split = "test" if i < 3 else ("validation" if i < 5 else "training")
            rows.append(
                {
                    "track_id": track_id,
                    "path": f"/audio/{track_id}.mp3",
                    "genre": genre,
                    "label": label,
                    "split": split,
                    "duration_s": 30.0,
                    "sample_rate": 22050,
                    "channels": 1,
                }
            )
            spec = rng.normal(-60, 5, SPEC_SHAPE).astype(np.float32)
            band = 20 + 40 * label
            spec[band : band + 12] += 40
            specs[track_id] = spec
    tracks = pd.DataFrame(rows)
    loaders = {t: (lambda s=s: s) for t, s in specs.items()}
    # Deliberately bad: one NaN spectrogram, one track without a spectrogram.
    loaders["999001"] = lambda: np.full(SPEC_SHAPE, np.nan, dtype=np.float32)
    bad = {
        "track_id": "999001",
        "path": "/audio/nan.mp3",
        "genre": "Rock",
        "label": 2,
        "split": "training",
        "duration_s": 30.0,
        "sample_rate": 22050,
        "channels": 1,
    }
    lost = {**bad, "track_id": "999002", "path": "/audio/lost.mp3"}
    tracks = pd.concat([tracks, pd.DataFrame([bad, lost])], ignore_index=True)
    return tracks, loaders


def _params(**overrides):
    params = {
        "weights": None,
        "random_seed": 0,
        "image": {"interpolation": "bilinear"},
        "batch_size": 8,
        "timing_runs": 2,
        "experiments": [
            {"backbone": "tinynet", "cut_level": "dense", "pca_variances": [0.99, 0.8]},
            {"backbone": "tinynet", "cut_level": "pool", "pca_variances": [0.9]},
        ],
        "cv_folds": 3,
        "n_jobs": 1,
        "classifiers": {
            "svm_linear": {"grid": {"C": [0.01, 1]}},
            "svm_rbf": {"fixed": {"kernel": "rbf"}, "grid": {"C": [1, 10], "gamma": [0.01]}},
            "mlp": {
                "fixed": {
                    "activation": "relu",
                    "solver": "adam",
                    "batch_size": 32,
                    "learning_rate_init": 0.001,
                    "early_stopping": True,
                    "max_iter": 50,
                },
                "grid": {"hidden_layer_sizes": [[16]], "alpha": [0.01]},
            },
        },
    }
    params.update(overrides)
    return params


@pytest.mark.slow
def test_transfer_pipeline_on_tiny_data(tmp_path, tiny_backbone, mlflow_store):
    mlflow = mlflow_store
    tracks, loaders = _tiny_data()
    catalog = transfer_catalog(tmp_path, tracks, loaders, _params())
    SequentialRunner().run(create_pipeline(), catalog)

    results = catalog.load("transfer_results")
    assert list(results.columns) == RESULT_COLUMNS
    # 2 variances x dense + 1 x pool, times 3 classifiers
    assert len(results) == 9
    assert set(results["classifier"]) == {"svm_linear", "svm_rbf", "mlp"}
    assert set(results["weights"]) == {"random"}
    assert dict(zip(results["cut_level"], results["feature_size"], strict=False)) == {
        "dense": 16,
        "pool": 7 * 7 * 4,
    }
    assert (results["n_components"] <= results["feature_size"]).all()
    assert (results["n_components"] >= 1).all()
    assert results["best_params"].str.startswith("{").all()
    assert (results["extract_ms_per_image"] > 0).all()
    assert (results["classify_ms_per_image"] > 0).all()
    # The bands separate the genres: far above chance (1/3) in cross-validation.
    assert results["cv_accuracy"].max() > 0.7
    assert results["test_accuracy"].between(0, 1).all()

    excluded = catalog.load("transfer_excluded_tracks")
    reasons = dict(zip(excluded["track_id"], excluded["reason"], strict=True))
    assert set(reasons) == {"999001", "999002"}
    assert "NaN" in reasons["999001"] and "no log-mel spectrogram" in reasons["999002"]

    best = catalog.load("transfer_best_model")
    # the table rounds to 4 decimals (tabulate_transfer_results), the bundle keeps the CV mean
    assert best["cv_accuracy"] == pytest.approx(results["cv_accuracy"].max(), abs=5e-5)
    assert best["class_names"] == GENRES and best["weights"] == "random"
    n_features = best["feature_size"]
    assert best["model"].predict(np.zeros((1, n_features), dtype=np.float32)).shape == (1,)
    assert catalog.load("transfer_best_confusion_matrix").axes
    # test accuracies with their 95 % Wilson interval; CV accuracies with their fold spread
    assert (
        (results["test_ci_low"] <= results["test_accuracy"])
        & (results["test_accuracy"] <= results["test_ci_high"])
    ).all()
    assert (results["cv_accuracy_std"] >= 0).all()
    # the best model's test predictions, and out-of-fold ones for the validation tracks
    test = catalog.load("transfer_test_predictions")
    held = tracks[tracks["split"] == "test"]
    assert set(test["track_id"]) <= set(held["track_id"]) and len(test) == results["test_tracks"][0]
    assert (test["predicted"] == test["label"]).mean() == pytest.approx(best["test_accuracy"])
    validation = catalog.load("transfer_validation_predictions")
    assert set(validation["track_id"]) <= set(
        tracks.loc[tracks["split"] == "validation", "track_id"]
    )
    assert len(validation) > 0
    assert np.allclose(validation.filter(like="prob_").sum(axis=1), 1.0)

    runs = pd.read_csv(tmp_path / "runs.csv")
    # log_models=selected (default): only the chosen configuration's run holds its model
    assert len(runs) == 9 and runs["selected"].sum() == 1
    assert (runs.loc[runs["selected"], "model_flavour"] == "sklearn").all()
    assert runs.loc[~runs["selected"], "model_uri"].isna().all()
    chosen = runs[runs["selected"]].iloc[0]
    assert chosen["metric.cv_accuracy"] == pytest.approx(results["cv_accuracy"].max(), abs=1e-4)
    assert set(runs["param.weights"]) == {"random"}
    logged = mlflow.sklearn.load_model(chosen["model_uri"], dst_path=str(tmp_path))
    assert logged.predict(np.zeros((1, 16), dtype=np.float32)).shape == (1,)

    # Re-run: every feature is stored, so the backbone is never even built.
    builds = len(BUILDS)
    parts = sorted(p.name for p in (tmp_path / "features").glob("*/part-*.npz"))
    extraction = create_pipeline().only_nodes("extract_transfer_features")
    SequentialRunner().run(extraction, transfer_catalog(tmp_path, tracks, loaders, _params()))
    assert len(BUILDS) == builds
    assert sorted(p.name for p in (tmp_path / "features").glob("*/part-*.npz")) == parts


def test_interrupted_extraction_resumes_where_it_stopped(tmp_path, tiny_backbone, monkeypatch):
    tracks, loaders = _tiny_data(per_genre=6)
    store = FeatureStoreDataset(str(tmp_path / "features"))
    calls = []
    power_cut = [True]
    original = CutLevelFeatureExtractor.features_of_inputs

    def crash_on_second_batch(self, inputs):
        calls.append(len(inputs))
        if len(calls) == 2 and power_cut[0]:
            raise KeyboardInterrupt("power cut")
        return original(self, inputs)

    monkeypatch.setattr(CutLevelFeatureExtractor, "features_of_inputs", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        save_jobs(
            tmp_path / "features", plan_transfer_features(tracks, loaders, _params(batch_size=4))
        )
    folder = next((tmp_path / "features").iterdir())
    assert len(list(folder.glob("part-*.npz"))) == 1  # the first batch survived, complete
    assert not list(folder.glob(".*tmp"))  # no half-written file left behind

    calls.clear()
    power_cut[0] = False
    save_jobs(tmp_path / "features", plan_transfer_features(tracks, loaders, _params(batch_size=4)))
    usable = len(tracks) - 2  # the NaN track and the track without a spectrogram
    assert sum(calls) == usable - 4  # only what the interrupted run had not written
    state = json.loads((folder / "state.json").read_text())
    assert len(state["items"]) == usable and set(state["failures"]) == {"999001"}
    features = store.load().matrix(folder.name, "dense", sorted(state["items"]))
    assert features.shape == (usable, 16)

    # A changed spectrogram is recomputed; the others are not.
    calls.clear()
    changed = dict(loaders)
    changed["900000"] = lambda: np.ones(SPEC_SHAPE, dtype=np.float32)
    save_jobs(tmp_path / "features", plan_transfer_features(tracks, changed, _params(batch_size=4)))
    assert calls == [1]


def test_unknown_cut_level_is_a_clear_error(tmp_path, tiny_backbone):
    tracks, loaders = _tiny_data(per_genre=2)
    params = _params(experiments=[{"backbone": "tinynet", "cut_level": "fc9"}])
    with pytest.raises(CutLevelError, match="fc9"):
        save_jobs(tmp_path / "f", plan_transfer_features(tracks, loaders, params))
    with pytest.raises(
        ValueError, match=r"transfer\.experiments\[0\]\.backbone='vgg19': unknown backbone"
    ):
        plan_transfer_features(
            tracks, loaders, _params(experiments=[{"backbone": "vgg19", "cut_level": "fc1"}])
        )


def test_rerun_with_a_spectrogram_store_reads_no_spectrogram(tmp_path, tiny_backbone):
    from music_genre.audio.spectrograms import LazySpectrograms

    tracks, loaders = _tiny_data(per_genre=2)
    reads = []

    def counted(track_id, loader):
        def load():
            reads.append(track_id)
            return loader()

        return load

    def store_view(tags):
        counted_loaders = {t: counted(t, f) for t, f in loaders.items()}
        return LazySpectrograms(counted_loaders, fingerprint="abc123", tags=tags)

    tags = {t: "size-mtime-1" for t in loaders}
    save_jobs(tmp_path / "features", plan_transfer_features(tracks, store_view(tags), _params()))
    assert len(reads) == len(loaders)
    reads.clear()
    save_jobs(tmp_path / "features", plan_transfer_features(tracks, store_view(tags), _params()))
    assert reads == ["999001"]  # only the track that failed is tried again
    reads.clear()
    tags["900000"] = "size-mtime-2"  # its audio file changed
    save_jobs(tmp_path / "features", plan_transfer_features(tracks, store_view(tags), _params()))
    assert sorted(reads) == ["900000", "999001"]


def test_damaged_feature_parts_are_named_and_recomputed(
    tmp_path, tiny_backbone, monkeypatch, caplog
):
    tracks, loaders = _tiny_data(per_genre=4)
    store = FeatureStoreDataset(str(tmp_path / "features"))
    save_jobs(tmp_path / "features", plan_transfer_features(tracks, loaders, _params(batch_size=2)))
    folder = next((tmp_path / "features").iterdir())
    state = json.loads((folder / "state.json").read_text())
    before = store.load().matrix(folder.name, "dense", sorted(state["items"]))
    parts = sorted(folder.glob("part-*.npz"))
    truncated, overwritten = parts[0], parts[1]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    overwritten.write_bytes(np.random.default_rng(0).bytes(overwritten.stat().st_size))

    calls = []
    original = CutLevelFeatureExtractor.features_of_inputs

    def counting(self, inputs):
        calls.append(len(inputs))
        return original(self, inputs)

    monkeypatch.setattr(CutLevelFeatureExtractor, "features_of_inputs", counting)
    with caplog.at_level("WARNING", logger="music_genre.datasets.feature_store"):
        save_jobs(
            tmp_path / "features", plan_transfer_features(tracks, loaders, _params(batch_size=2))
        )
    assert str(truncated) in caplog.text and str(overwritten) in caplog.text
    assert sum(calls) == 4  # the items of the two damaged parts, nothing else
    after = store.load().matrix(folder.name, "dense", sorted(state["items"]))
    np.testing.assert_array_equal(after, before)


# --------------------------------------------------------------------------------------------
# Grid search: fits that hit their iteration limit are counted for any n_jobs
# --------------------------------------------------------------------------------------------


def _count_convergence_warnings(search, x, y) -> int:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        search.fit(x, y)
    return sum(issubclass(w.category, ConvergenceWarning) for w in caught)


@pytest.mark.parametrize("n_jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_iteration_limit_count_equals_sklearns_convergence_warnings(n_jobs):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from music_genre.models.evaluation import stopped_at_iteration_limit
    from music_genre.pipelines.transfer.search import iteration_limit_fits

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 12))
    y = np.repeat([0, 1, 2], 20)
    x[:, 0] += y  # separable enough that a generous limit converges, a tiny one does not
    folds = 3

    def search(jobs):
        pipe = Pipeline([("scaler", StandardScaler()), ("clf", LinearSVC(random_state=0))])
        return GridSearchCV(
            pipe,
            {"clf__max_iter": [2, 5000], "clf__C": [0.1, 10.0]},
            scoring={"accuracy": "accuracy", "iteration_limit": stopped_at_iteration_limit},
            refit="accuracy",
            cv=folds,
            n_jobs=jobs,
        )

    reference = search(1)
    warned = _count_convergence_warnings(reference, x, y)
    assert warned >= 2 * folds  # the max_iter=2 points warn in every fold
    assert iteration_limit_fits(reference, folds) == warned
    parallel = search(n_jobs)
    parallel.fit(x, y)
    assert iteration_limit_fits(parallel, folds) == warned


@pytest.mark.numeric
def test_a_one_ulp_change_in_a_rounding_only_feature_does_not_move_the_prediction():
    """A feature constant up to float32 rounding is dropped before scaling: otherwise the
    scaler divides by ~1e-14 and a one-ulp difference (ONNX vs TensorFlow, another batch)
    becomes a shift of many standard deviations."""
    from sklearn.svm import LinearSVC

    from music_genre.pipelines.transfer.search import _grid_search

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.normal(size=(60, 6)).astype(np.float32) + y[:, None].astype(np.float32)
    tiny = np.float32(2.1e-6)
    x[:, 5] = tiny
    x[7, 5] = np.nextafter(tiny, np.float32(1))  # one track differs by one ulp
    x_test = x[:6].copy()
    settings = TransferParams.model_validate(
        _params(
            experiments=[{"backbone": "vgg16", "cut_level": "fc1"}], blas_threads=1, timing_runs=1
        )
    )
    result = _grid_search(
        x, y, x_test, y[:6], LinearSVC, {"random_state": 0}, {"C": [1.0]}, 0.99, 3, settings, None
    )
    model = result["model"]
    assert not model.named_steps["drop_rounding"].get_support()[5]
    assert model.named_steps["drop_rounding"].get_support()[:5].all()
    nudged = x_test.copy()
    nudged[:, 5] = np.nextafter(tiny, np.float32(1))
    np.testing.assert_array_equal(model.decision_function(x_test), model.decision_function(nudged))


def test_best_model_on_a_cv_tie_is_the_steadier_one_as_best_models_csv_names_it():
    """#23: transfer_best_model is chosen by music_genre.models.selection's rule on the values that
    transfer_results holds (rounded to 4 places): CV accuracy, then lower cv_accuracy_std, then
    list order; best_model_table names the same configuration. No fitting."""
    from music_genre.pipelines.reporting.nodes import best_model_table
    from music_genre.pipelines.transfer.nodes import (
        select_best_transfer_model,
        tabulate_transfer_results,
    )

    def result(classifier, cv, std):
        return {
            "model": classifier,
            "backbone": "vgg16",
            "cut_level": "fc2",
            "feature_size": 4096,
            "pca_variance": 0.9,
            "n_components": 12,
            "classifier": classifier,
            "best_params": "{}",
            "cv_accuracy": cv,
            "cv_accuracy_std": std,
            "test_accuracy": 0.5,
            "test_ci_low": 0.3,
            "test_ci_high": 0.7,
            "test_tracks": 16,
            "weights": "random",
            "weights_fingerprint": "x",
            "random_seed": 0,
            "image_interpolation": "bilinear",
            "extract_ms_per_image": 1.0,
            "classify_ms_per_image": 1.0,
            "y_test": [0, 1],
            "y_pred": [0, 1],
        }

    # 0.81251 and 0.81249 are both 0.8125 in transfer_results: the lower spread wins
    search = [result("svm_linear", 0.81251, 0.05), result("svm_rbf", 0.81249, 0.01)]
    search.append(result("mlp", 0.8125, 0.01))
    tracks = pd.DataFrame({"label": [0, 1], "genre": ["blues", "rock"]})
    bundle, _ = select_best_transfer_model(search, tracks)
    assert bundle["model"] == "svm_rbf"
    paper = pd.DataFrame(columns=["pipeline", "model", "variant", "metric", "split", "value"])
    row = best_model_table(None, None, tabulate_transfer_results(search), None, paper).loc[0]
    assert row["model"] == "vgg16 fc2 0.9 svm_rbf random"
