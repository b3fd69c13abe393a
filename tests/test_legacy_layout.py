"""Artefacts written by the flat layout before issue #22 (tests/data/legacy_layout, see its
README) load with the layered code and predict what they predicted when saved."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "legacy_layout"


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(DATA / "expected.npz") as saved:
        return dict(saved)


def _load_pickle(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pickle.loads((DATA / name).read_bytes())  # noqa: S301 - the project's own files


def test_transfer_classifier_pipeline(expected):
    import joblib

    from music_genre.models.preprocessing import DropRoundingOnlyFeatures

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        classifier = joblib.load(DATA / "transfer_classifier.joblib")
    assert any(isinstance(step, DropRoundingOnlyFeatures) for _, step in classifier.steps)
    np.testing.assert_allclose(
        classifier.predict_proba(expected["features"]), expected["classifier"], rtol=1e-12
    )


def test_transfer_predictor(expected):
    from music_genre.models.probabilities import classifier_probabilities
    from music_genre.serving import TransferPredictor

    predictor = _load_pickle("transfer_predictor.pkl")
    assert type(predictor) is TransferPredictor
    np.testing.assert_allclose(
        classifier_probabilities(predictor.bundle["model"], expected["features"]),
        expected["classifier"],
        rtol=1e-12,
    )


def test_cnn_and_fusion_predictors(expected):
    from music_genre.models.fusion import fused_probabilities
    from music_genre.serving import CnnPredictor, FusionPredictor

    cnn = _load_pickle("cnn_predictor.pkl")
    assert type(cnn) is CnnPredictor
    np.testing.assert_allclose(cnn.probabilities(expected["images"]), expected["cnn"], atol=1e-6)
    fusion = _load_pickle("fusion_predictor.pkl")
    assert type(fusion) is FusionPredictor
    members = [m.probabilities(expected["images"]) for m in fusion.members]
    np.testing.assert_allclose(
        fused_probabilities(fusion.bundle, members), expected["fusion"], atol=1e-6
    )


@pytest.mark.slow
def test_served_model_and_keras_file_load_in_a_fresh_process(expected):
    """The logged MLflow pyfunc model (cloudpickle) and the .keras file (loaded as the catalog
    loads it: its custom layer is registered by name, ``music_genre>StudyImageScaling``), in a
    process that imported nothing of the project before."""
    code = f"""
import numpy as np, mlflow.pyfunc
data = np.load({str(DATA / "expected.npz")!r})
from music_genre.datasets.keras_model import KerasModelDataset
model = KerasModelDataset({str(DATA / "cnn_model.keras")!r}).load()
np.testing.assert_allclose(model.predict(data["images"], verbose=0), data["cnn"], atol=1e-6)
served = mlflow.pyfunc.load_model({str(DATA / "served_model")!r}).unwrap_python_model()
from music_genre.serving.served_model import GenrePredictorModel
assert type(served) is GenrePredictorModel, type(served)
np.testing.assert_allclose(served.predictor.probabilities(data["images"]), data["cnn"], atol=1e-6)
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_old_module_paths_resolve_to_the_new_objects():
    import importlib

    from music_genre._legacy_paths import LEGACY_MODULES
    from music_genre.serving.served_model import GenrePredictorModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for old, targets in LEGACY_MODULES.items():
            module = importlib.import_module(old)
            assert module.__legacy_targets__ == targets
            for target in targets:
                importlib.import_module(target)
        predict = importlib.import_module("music_genre.predict")
    assert predict.GenrePredictorModel is GenrePredictorModel
