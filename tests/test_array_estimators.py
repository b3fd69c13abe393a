"""Fitted scikit-learn estimators as numpy arrays (music_genre.models.array_estimators): the
same outputs as scikit-learn on data it did not see, the same methods, a lossless ``.npz``
round trip, and a refusal (with the reason) where there is no exact array form."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler
from sklearn.svm import SVC, LinearSVC

from music_genre.models import array_estimators
from music_genre.models.array_estimators import (
    RTOL,
    ArrayEstimator,
    NotCompactable,
    compact_estimator,
)
from music_genre.models.preprocessing import DropRoundingOnlyFeatures

pytestmark = pytest.mark.numeric

HEADS = {
    "linear_svc": lambda: LinearSVC(C=0.1, random_state=0),
    "logistic": lambda: LogisticRegression(max_iter=500),
    "svc_rbf": lambda: SVC(kernel="rbf", gamma=0.01),
    "svc_rbf_ovo": lambda: SVC(kernel="rbf", decision_function_shape="ovo"),
    "svc_linear": lambda: SVC(kernel="linear"),
    "svc_poly": lambda: SVC(kernel="poly", degree=2),
    "svc_sigmoid": lambda: SVC(kernel="sigmoid", gamma=0.01),
    "mlp": lambda: MLPClassifier((16, 8), max_iter=30, random_state=0),
}


def _data(classes: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(150, 30)) * rng.uniform(0.1, 5.0, 30) + rng.normal(size=30)
    x[:, 3] = 2.5  # a constant column: the selector drops it
    y = rng.integers(0, classes, 150)
    return x[:120], y[:120], x[120:]


def _fit(estimator, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the MLP's 30 iterations do not converge
        return estimator.fit(x, y)


@pytest.mark.parametrize("classes", [2, 3, 8])
@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("whiten", [False, True])
def test_the_arrays_compute_what_the_fitted_pipeline_computes(classes, head, whiten, tmp_path):
    train, labels, unseen = _data(classes)
    pipeline = _fit(
        make_pipeline(
            DropRoundingOnlyFeatures(), StandardScaler(), PCA(0.9, whiten=whiten), HEADS[head]()
        ),
        train,
        labels,
    )
    compact = compact_estimator(pipeline)
    compact.save(tmp_path / "model.npz")
    loaded = ArrayEstimator.load(tmp_path / "model.npz")
    for method in ("decision_function", "predict_proba", "transform"):
        assert hasattr(loaded, method) == hasattr(pipeline, method), method
        if not hasattr(pipeline, method):
            continue
        expected = getattr(pipeline, method)(unseen)
        # the same float64 formulas in another summation order (see RTOL)
        np.testing.assert_allclose(
            getattr(loaded, method)(unseen), expected, rtol=RTOL, atol=RTOL * np.abs(expected).max()
        )
        # the .npz round trip is exact
        np.testing.assert_array_equal(
            getattr(loaded, method)(unseen), getattr(compact, method)(unseen)
        )
    np.testing.assert_array_equal(loaded.classes_, pipeline.classes_)


def test_a_lone_scaler_keeps_its_transform():
    train, _, unseen = _data(3)
    scaler = StandardScaler().fit(train)
    compact = compact_estimator(scaler)
    assert not hasattr(compact, "predict_proba") and not hasattr(compact, "decision_function")
    np.testing.assert_allclose(compact.transform(unseen), scaler.transform(unseen), rtol=RTOL)


@pytest.mark.parametrize(
    ("estimator", "reason"),
    [
        (lambda: SVC(probability=True), "Platt scaling"),
        (lambda: make_pipeline(PolynomialFeatures(2), LinearSVC()), "PolynomialFeatures"),
        (lambda: make_pipeline(StandardScaler(), SVC(kernel="precomputed")), "precomputed"),
    ],
)
def test_what_has_no_exact_array_form_is_refused_with_the_reason(estimator, reason):
    train, labels, _ = _data(3)
    model = estimator()
    if "precomputed" in reason:  # the kernel matrix is the input: fitting on it is enough
        model = SVC(kernel="precomputed").fit(train @ train.T, labels)
    else:
        model = _fit(model, train, labels)
    with pytest.raises(NotCompactable, match=reason):
        compact_estimator(model)


def test_an_unfitted_estimator_is_refused():
    with pytest.raises(NotCompactable):
        compact_estimator(make_pipeline(StandardScaler(), LinearSVC()))


def test_a_wrong_conversion_is_caught_by_the_check(monkeypatch):
    """The probe comparison is what guards the formulas: a conversion that ranks classes
    differently (here, the one-vs-rest votes dropped) is refused, not packaged."""
    train, labels, _ = _data(8)
    model = _fit(SVC(kernel="rbf", gamma=0.01), train, labels)
    compact_estimator(model)  # the real conversion passes
    monkeypatch.setattr(array_estimators, "_one_vs_rest", lambda pairwise, n: np.zeros((16, n)))
    with pytest.raises(NotCompactable, match="decision_function differs"):
        compact_estimator(model)


def test_string_labels_round_trip_without_pickles(tmp_path):
    train, labels, unseen = _data(3)
    names = np.array(["Folk", "Pop", "Rock"], dtype=object)[labels]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(train, names)
    compact_estimator(model).save(tmp_path / "model.npz")
    loaded = ArrayEstimator.load(tmp_path / "model.npz")  # allow_pickle=False inside
    assert loaded.classes_.tolist() == ["Folk", "Pop", "Rock"]
    np.testing.assert_allclose(
        loaded.predict_proba(unseen), model.predict_proba(unseen), rtol=RTOL, atol=RTOL
    )


def test_float32_features_are_scaled_as_scikit_learn_scales_them():
    """Network features arrive as float32, and scikit-learn's scaler casts its mean and scale
    to float32 before subtracting: with a large mean and a small spread that rounding moves the
    scaled value a lot, and the classifier was trained on those numbers. The arrays compute
    the same float32 operations, so the outputs agree to float32 epsilon (1.2e-7) relative, not
    merely to the ~1e-3 the rounding itself moves them by here (float64 arithmetic)."""
    rng = np.random.default_rng(2)
    train = (80.0 + 1e-3 * rng.normal(size=(200, 12))).astype(np.float32)
    unseen = (80.0 + 1e-3 * rng.normal(size=(30, 12))).astype(np.float32)
    labels = rng.integers(0, 3, 200)
    model = make_pipeline(StandardScaler(), PCA(0.9), LinearSVC(random_state=0)).fit(train, labels)
    expected = model.decision_function(unseen)
    ours = compact_estimator(model).decision_function(unseen)
    in_float64 = compact_estimator(model).decision_function(unseen.astype(np.float64))
    assert np.abs(in_float64 - expected).max() > 1e-4  # the case matters
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
