"""Fitted scikit-learn estimators as plain numpy arrays, computing the same numbers.

Why: importing scikit-learn costs ``genre-predict`` about 0.6 s of its start-up (the transfer
model is a scaler -> PCA -> classifier pipeline; the handcrafted model's scaler), and a pickle
can only be loaded where the same scikit-learn is installed. The packaged genre predictor
(:mod:`music_genre.serving.package`) stores these parts as ``.npz`` arrays instead
(``allow_pickle=False``: loading runs no code) when :func:`compact_estimator` can convert them.

A conversion is checked before it is used: on a seeded probe, its outputs must equal
scikit-learn's to a float64 rounding tolerance (:data:`RTOL`); otherwise it is refused with the
reason, and the caller keeps the pickle. Supported: ``Pipeline`` chains of feature selectors
(any ``SelectorMixin``), ``StandardScaler``, ``PCA``, ending in ``LinearSVC`` /
``LogisticRegression`` (linear), ``SVC`` without Platt scaling (any libsvm kernel but
precomputed), ``MLPClassifier``, or in a transformer.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

# The arrays reproduce scikit-learn's float64 arithmetic with other summation orders: relative
# differences stay near n_features * 2.2e-16 (< 1e-10 for 10^5 features); a wrong formula
# differs by O(1).
RTOL = 1e-7
# The same float32 operations as scikit-learn's, but matrix products blocked otherwise by BLAS
# for another number of rows: ~1e-7 relative per value (float32 epsilon), with margin.
RTOL_FLOAT32 = 1e-5
PROBE_ROWS = 16
_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "logistic": lambda x: 1.0 / (1.0 + np.exp(-x)),
}


class NotCompactable(ValueError):
    """The estimator has no array form here (the reason is the message)."""


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _two_columns(positive: np.ndarray) -> np.ndarray:
    return np.column_stack([1.0 - positive, positive])


def _kernel(kind: str, x: np.ndarray, vectors: np.ndarray, p: Mapping[str, np.ndarray]) -> Any:
    gamma, coef0, degree = float(p["gamma"]), float(p["coef0"]), float(p["degree"])
    if kind == "rbf":
        distances = (
            (x * x).sum(axis=1)[:, None] - 2.0 * x @ vectors.T + (vectors * vectors).sum(axis=1)
        )
        return np.exp(-gamma * np.maximum(distances, 0.0))
    dot = x @ vectors.T
    if kind == "linear":
        return dot
    if kind == "poly":
        return (gamma * dot + coef0) ** degree
    return np.tanh(gamma * dot + coef0)  # sigmoid


def _svc_pairwise(x: np.ndarray, p: Mapping[str, np.ndarray], kind: str) -> np.ndarray:
    """libsvm's one-vs-one decision values, pairs (i, j) with i < j in order (as scikit-learn's
    ``SVC._decision_function``)."""
    kernel = _kernel(kind, x.astype(np.float64, copy=False), p["support_vectors"], p)
    counts = p["n_support"].astype(int)
    starts = np.concatenate([[0], np.cumsum(counts)])
    dual, intercept = p["dual_coef"], p["intercept"]
    n_classes = counts.size
    columns, pair = [], 0
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
            value = kernel[:, si] @ dual[j - 1, si] + kernel[:, sj] @ dual[i, sj]
            columns.append(value + intercept[pair])
            pair += 1
    return np.column_stack(columns)


def _one_vs_rest(pairwise: np.ndarray, n_classes: int) -> np.ndarray:
    """Votes plus bounded summed confidences: scikit-learn's ``decision_function_shape='ovr'``
    transformation of one-vs-one values (a monotonic one: ranks stay)."""
    votes = np.zeros((pairwise.shape[0], n_classes))
    confidence = np.zeros_like(votes)
    pair = 0
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            value = pairwise[:, pair]
            confidence[:, i] += value
            confidence[:, j] -= value
            votes[:, i] += value >= 0
            votes[:, j] += value < 0
            pair += 1
    return votes + confidence / (3.0 * (np.abs(confidence) + 1.0))


def _apply_step(kind: str, p: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """One transformer step, in the dtype scikit-learn keeps: its selectors, scaler and PCA
    compute float32 features in float32, and so must the copy (the scaler's float32 rounding
    of a large mean, divided by a small spread, moves a scaled feature by up to 0.04 on the
    demo's musicnn features: the classifier was trained on those numbers)."""
    if kind == "select":
        return x[:, p["mask"]]
    if kind == "standardize":  # mean and scale cast to the features' dtype first
        return (x - p["mean"].astype(x.dtype)) / p["scale"].astype(x.dtype)
    if kind == "project":  # PCA: project, then centre (scikit-learn's order)
        out = x @ p["components"].T
        out = out - (p["mean"] @ p["components"].T).astype(out.dtype, copy=False)
        if p["whiten"].size:
            out = np.divide(out, p["whiten"]).astype(out.dtype, copy=False)
        return out
    raise NotCompactable(f"unknown step {kind!r}")


class ArrayEstimator:
    """A chain of transformer steps and an optional classifier head, as numpy arrays.

    Has ``transform``, ``decision_function`` and ``predict_proba`` exactly where the
    scikit-learn original has them (``hasattr`` answers alike: callers such as
    :func:`~music_genre.models.probabilities.classifier_probabilities` pick a method by it)."""

    def __init__(
        self,
        steps: list[tuple[str, dict[str, np.ndarray]]],
        head: tuple[str, dict[str, np.ndarray]] | None = None,
    ) -> None:
        self.steps = steps
        self.head = head
        if head is None:
            self.transform = self._transform
        else:
            self.classes_ = head[1]["classes"]
            if head[0] != "mlp":
                self.decision_function = self._decision_function
            if head[0] in {"logistic", "mlp"}:
                self.predict_proba = self._predict_proba

    def _transform(self, x: Any) -> np.ndarray:
        out = np.asarray(x)
        if out.dtype not in (np.float32, np.float64):
            out = out.astype(np.float64)
        for kind, params in self.steps:
            out = _apply_step(kind, params, out)
        return out

    def _head_input(self, x: Any) -> tuple[str, dict[str, np.ndarray], np.ndarray]:
        assert self.head is not None
        return self.head[0], self.head[1], self._transform(x)

    def _decision_function(self, x: Any) -> np.ndarray:
        kind, p, z = self._head_input(x)
        if kind in {"linear", "logistic"}:
            scores = z @ p["coef"].T + p["intercept"]
            return scores.ravel() if scores.shape[1] == 1 else scores
        if kind.startswith("svc_"):
            pairwise = _svc_pairwise(z, p, kind.removeprefix("svc_"))
            if p["classes"].size == 2:
                return pairwise.ravel()
            if bool(p["ovr"]):
                return _one_vs_rest(pairwise, p["classes"].size)
            return pairwise
        raise AttributeError(f"{kind} has no decision_function")

    def _predict_proba(self, x: Any) -> np.ndarray:
        kind, p, z = self._head_input(x)
        if kind == "logistic":
            scores = z @ p["coef"].T + p["intercept"]
            if scores.shape[1] == 1:
                return _two_columns(1.0 / (1.0 + np.exp(-scores[:, 0])))
            return _softmax(scores)
        activation = _ACTIVATIONS[str(p["activation"])]
        n_layers = int(p["n_layers"])
        for layer in range(n_layers):
            z = z @ p[f"coef{layer}"] + p[f"intercept{layer}"]
            if layer < n_layers - 1:
                z = activation(z)
        if str(p["out_activation"]) == "softmax":
            return _softmax(z)
        return _two_columns(1.0 / (1.0 + np.exp(-z[:, 0])))

    # -- storage: one .npz, keys "<index>.<kind>.<name>" ----------------------------------
    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        layers = [*self.steps, *([self.head] if self.head else [])]
        for index, (kind, params) in enumerate(layers):
            arrays[f"{index}.{kind}."] = np.zeros(0)
            for name, value in params.items():
                arrays[f"{index}.{kind}.{name}"] = np.asarray(value)
        arrays["head"] = np.asarray(self.head is not None)
        with open(path, "wb") as out:
            np.savez(out, allow_pickle=False, **arrays)

    @classmethod
    def load(cls, path: Path) -> ArrayEstimator:
        with np.load(path, allow_pickle=False) as stored:
            layers: dict[int, tuple[str, dict[str, np.ndarray]]] = {}
            for key in stored.files:
                if key == "head":
                    continue
                index, kind, name = key.split(".", 2)
                params = layers.setdefault(int(index), (kind, {}))[1]
                if name:
                    params[name] = stored[key]
            ordered = [layers[i] for i in sorted(layers)]
            if bool(stored["head"]):
                return cls(ordered[:-1], ordered[-1])
            return cls(ordered)


def _step(estimator: Any) -> tuple[str, dict[str, np.ndarray]]:
    name = type(estimator).__name__
    if hasattr(estimator, "get_support") and hasattr(estimator, "_get_support_mask"):
        return "select", {"mask": np.asarray(estimator.get_support(), dtype=bool)}
    if name == "StandardScaler":
        n = int(estimator.n_features_in_)
        mean = estimator.mean_ if estimator.with_mean else np.zeros(n)
        scale = estimator.scale_ if estimator.with_std else np.ones(n)
        return "standardize", {"mean": np.asarray(mean), "scale": np.asarray(scale)}
    if name == "PCA":
        whiten = np.zeros(0)
        if estimator.whiten:  # clipped at the dtype's epsilon, as scikit-learn does
            whiten = np.sqrt(estimator.explained_variance_)
            whiten = np.maximum(whiten, np.finfo(whiten.dtype).eps)
        return "project", {
            "mean": np.asarray(estimator.mean_),
            "components": np.asarray(estimator.components_),
            "whiten": np.asarray(whiten),
        }
    raise NotCompactable(f"{name} has no array form")


def _head(estimator: Any) -> tuple[str, dict[str, np.ndarray]]:
    name = type(estimator).__name__
    classes = np.asarray(estimator.classes_)
    if classes.dtype == object:  # string labels: stored as text (the .npz holds no pickles)
        classes = classes.astype(str)
    if name in {"LinearSVC", "LogisticRegression"}:
        ovr = name == "LogisticRegression" and getattr(estimator, "multi_class", "") == "ovr"
        if ovr and classes.size > 2:
            raise NotCompactable("one-vs-rest LogisticRegression has no array form")
        kind = "linear" if name == "LinearSVC" else "logistic"
        return kind, {
            "classes": classes,
            "coef": np.atleast_2d(estimator.coef_),
            "intercept": np.atleast_1d(estimator.intercept_),
        }
    if name == "SVC":
        if estimator.get_params().get("probability") is True:
            raise NotCompactable("SVC with Platt scaling (probability=True) has no array form")
        if estimator.kernel not in {"rbf", "linear", "poly", "sigmoid"}:
            raise NotCompactable(f"SVC kernel {estimator.kernel!r} has no array form")
        return f"svc_{estimator.kernel}", {
            "classes": classes,
            "support_vectors": np.asarray(estimator.support_vectors_),
            "n_support": np.asarray(estimator.n_support_),
            "dual_coef": np.asarray(estimator.dual_coef_),
            "intercept": np.asarray(estimator.intercept_),
            "gamma": np.asarray(float(estimator._gamma)),
            "coef0": np.asarray(float(estimator.coef0)),
            "degree": np.asarray(float(estimator.degree)),
            "ovr": np.asarray(estimator.decision_function_shape == "ovr"),
        }
    if name == "MLPClassifier":
        layers = {f"coef{i}": np.asarray(c) for i, c in enumerate(estimator.coefs_)}
        layers |= {f"intercept{i}": np.asarray(b) for i, b in enumerate(estimator.intercepts_)}
        if estimator.out_activation_ not in {"softmax", "logistic"}:
            raise NotCompactable(f"MLP output {estimator.out_activation_!r} has no array form")
        return "mlp", {
            "classes": classes,
            "activation": np.asarray(estimator.activation),
            "out_activation": np.asarray(estimator.out_activation_),
            "n_layers": np.asarray(len(estimator.coefs_)),
            **layers,
        }
    raise NotCompactable(f"{name} has no array form")


def _convert(estimator: Any) -> ArrayEstimator:
    chain = list(getattr(estimator, "steps", [("only", estimator)]))
    estimators = [step for _, step in chain if step not in (None, "passthrough")]
    *transformers, last = estimators
    steps = [_step(step) for step in transformers]
    if hasattr(last, "classes_"):
        return ArrayEstimator(steps, _head(last))
    return ArrayEstimator([*steps, _step(last)])


def _same(ours: np.ndarray, reference: np.ndarray, rtol: float) -> bool:
    reference = np.asarray(reference, dtype=np.float64)
    scale = max(float(np.abs(reference).max(initial=0.0)), 1.0)
    return ours.shape == reference.shape and bool(
        np.allclose(ours, reference, rtol=rtol, atol=rtol * scale)
    )


def compact_estimator(estimator: Any, seed: int = 0) -> ArrayEstimator:
    """The array form of ``estimator``, checked against it on a seeded probe (standard normal
    rows of its input width; each method the original has must agree); NotCompactable with the
    reason otherwise."""
    try:
        converted = _convert(estimator)
    except AttributeError as exc:  # not fitted, or an attribute this version lacks
        raise NotCompactable(f"{type(estimator).__name__}: {exc}") from exc
    width = int(getattr(estimator, "n_features_in_", 0))
    if width <= 0:
        raise NotCompactable(f"{type(estimator).__name__}: unknown input width")
    probe = np.random.default_rng(seed).standard_normal((PROBE_ROWS, width))
    with warnings.catch_warnings():
        # an estimator fitted on a named table warns that the probe has no column names
        warnings.simplefilter("ignore", UserWarning)
        _check(estimator, converted, probe, RTOL)
        # features arrive as float32 (the networks' output): scikit-learn keeps that dtype
        _check(estimator, converted, probe.astype(np.float32), RTOL_FLOAT32)
    return converted


def _check(estimator: Any, converted: ArrayEstimator, probe: np.ndarray, rtol: float) -> None:
    for method in ("transform", "decision_function", "predict_proba"):
        has_ours = hasattr(converted, method)
        try:
            reference = getattr(estimator, method)(probe) if hasattr(estimator, method) else None
        except AttributeError:  # scikit-learn's available_if raises on the call
            reference = None
        if (reference is None) != (not has_ours):
            raise NotCompactable(f"{type(estimator).__name__}: {method} availability differs")
        if reference is not None and not _same(getattr(converted, method)(probe), reference, rtol):
            raise NotCompactable(f"{type(estimator).__name__}: {method} differs from the original")
