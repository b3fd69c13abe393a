"""Fusion: simplex weights, combiners fit on validation only, results with intervals, and the
fusion predictor behind `genre-predict --model fusion`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from music_genre.commands import predict as predict_cli
from music_genre.config import FusionParams
from music_genre.models.evaluation import prediction_table
from music_genre.models.fusion import best_weights, simplex_weights
from music_genre.pipelines.fusion import create_pipeline
from music_genre.serving import FusionPredictor, predict_file

CLASSES = ["Folk", "Pop", "Rock"]
PARAMS = {"method": "auto", "weight_step": 0.1, "stacking_c": 1.0, "cv_folds": 3, "seed": 0}


def _member(labels: np.ndarray, knows: set[int], rng: np.random.Generator) -> np.ndarray:
    """Confident and right on the classes it ``knows``, uniform noise on the others."""
    probabilities = rng.dirichlet(np.ones(len(CLASSES)), size=labels.size)
    for i, label in enumerate(labels):
        if label in knows:
            probabilities[i] = 0.1 / (len(CLASSES) - 1)
            probabilities[i, label] = 0.9
    return probabilities


def _predictions(split: str, n: int, seed: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    ids = [f"{split}{i:03d}" for i in range(n)]
    knows = {"handcrafted": {0}, "cnn": {1}, "transfer": {2}}
    return {
        name: prediction_table(ids, labels, _member(labels, classes, rng), CLASSES)
        for name, classes in knows.items()
    }


def test_simplex_grid_and_best_weights():
    grid = simplex_weights(3, 0.1)
    assert grid.shape == (66, 3) and np.allclose(grid.sum(axis=1), 1.0)
    labels = np.array([0, 1, 0, 1])
    useful = np.eye(2)[labels]
    noise = np.full((4, 2), 0.5)
    noise[:, 1] += 0.01  # always says class 1, half right
    # same accuracy with any weight on the useful member: the higher likelihood wins
    assert best_weights([noise, useful], labels, 0.5).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="weight_step"):
        simplex_weights(2, 0.3)


def test_fusion_pipeline_fits_on_validation_and_reports_test_with_interval():
    validation, test = _predictions("val", 60, 1), _predictions("test", 60, 2)
    catalog = DataCatalog(
        {
            **{f"{m}_validation_predictions": MemoryDataset(t) for m, t in validation.items()},
            **{f"{m}_test_predictions": MemoryDataset(t) for m, t in test.items()},
            "params:fusion": MemoryDataset(PARAMS),
            # what the handcrafted member's features were computed over: kept in the bundle
            "handcrafted_model_info": MemoryDataset(
                {"source": "fma_csv", "features_over": "whole_track", "units": "(64)"}
            ),
            "fusion_model": MemoryDataset(),
            "fusion_results": MemoryDataset(),
            "fusion_test_predictions": MemoryDataset(),
            "fusion_mlflow_runs": MemoryDataset(),
        }
    )
    pipeline = create_pipeline()
    fit = next(n for n in pipeline.nodes if n.name == "fit_fusion")
    assert not [name for name in fit.inputs if "test" in name]  # never selects on test
    SequentialRunner().run(pipeline, catalog)
    results = catalog.load("fusion_results")
    assert results["method"].tolist() == ["late_fusion", "stacking"]
    assert results["selected"].sum() == 1
    assert (results["test_tracks"] == 60).all()
    assert (results["test_ci_low"] < results["test_accuracy"]).all()
    assert (results["test_accuracy"] < results["test_ci_high"]).all()
    # each member alone is right on ~1/3 + chance; fused, each member covers its class
    best_member = max((t["predicted"] == t["label"]).mean() for t in test.values())
    assert results["test_accuracy"].min() > best_member + 0.1
    chosen = catalog.load("fusion_test_predictions")
    assert len(chosen) == 60 and list(chosen.columns[-3:]) == [f"prob_{c}" for c in CLASSES]
    runs = catalog.load("fusion_mlflow_runs")
    assert [r["run_name"] for r in runs] == ["fusion: late_fusion", "fusion: stacking"]
    assert "test_ci_low" in runs[0]["metrics"]
    # the bundle keeps what the handcrafted member's features were computed over
    assert "full-length tracks" in runs[0]["params"]["handcrafted_training_audio"]
    from music_genre.pipelines.fusion.nodes import fit_fusion

    info = {"source": "fma_csv", "features_over": "whole_track"}
    bundle = fit_fusion(*validation.values(), PARAMS, info)
    audio = bundle["member_audio"]["handcrafted"]
    assert (audio["source"], audio["features_over"]) == ("fma_csv", "whole_track")


def test_fusion_needs_two_members_with_predictions():
    validation = _predictions("val", 30, 1)
    catalog = DataCatalog(
        {
            "handcrafted_validation_predictions": MemoryDataset(validation["handcrafted"]),
            "cnn_validation_predictions": MemoryDataset(None),
            "transfer_validation_predictions": MemoryDataset(None),
            "params:fusion": MemoryDataset(PARAMS),
            "handcrafted_model_info": MemoryDataset(None),
            **{
                f"{m}_test_predictions": MemoryDataset(None)
                for m in ("handcrafted", "cnn", "transfer")
            },
        }
    )
    with pytest.raises(Exception, match="at least two of handcrafted, cnn, transfer"):
        SequentialRunner().run(create_pipeline(), catalog)


@dataclass
class _Constant:
    probabilities: list[float]
    seconds: float
    label: str = "constant"

    class_names = CLASSES

    def window_s(self) -> float:
        return self.seconds

    def window_probabilities(self, path: str, offsets) -> np.ndarray:
        return np.tile(self.probabilities, (len(offsets), 1))


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.wav"
    sf.write(path, 0.1 * np.sin(np.arange(16000 * 4) / 10.0), 16000)
    return path


def test_fusion_predictor_combines_members_per_window(clip: Path):
    bundle = {
        "members": ["a", "b"],
        "class_names": CLASSES,
        "method": "late_fusion",
        "weights": [0.2, 0.8],
    }
    predictor = FusionPredictor(
        bundle, [_Constant([1.0, 0.0, 0.0], 29.7), _Constant([0.0, 0.5, 0.5], 30.0)]
    )
    assert predictor.window_s() == 30.0
    result = predict_file(predictor, clip)
    assert result.error is None
    assert result.probabilities == pytest.approx({"Folk": 0.2, "Pop": 0.4, "Rock": 0.4})


def test_cli_accepts_model_fusion(monkeypatch, clip: Path, capsys):
    bundle = {
        "members": ["a", "b"],
        "class_names": CLASSES,
        "method": "late_fusion",
        "weights": [0.5, 0.5],
    }
    fused = FusionPredictor(
        bundle, [_Constant([0.6, 0.4, 0.0], 29.7), _Constant([0.0, 0.4, 0.6], 29.7)]
    )
    asked = []

    class Catalog:
        def load(self, name):
            raise AssertionError(f"the stubbed build_predictor reads nothing, not {name}")

    class Context:
        catalog = Catalog()
        params: dict = {}

    monkeypatch.setattr(predict_cli, "_kedro_context", lambda project, env: Context())
    monkeypatch.setattr(
        predict_cli,
        "build_predictor",
        lambda kind, load, params, exported: asked.append(kind) or fused,
    )
    assert predict_cli.main(["--model", "fusion", "--json", str(clip)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert asked == ["fusion"]
    assert out[0]["top"][0] == {"genre": "Pop", "probability": 0.4}


def test_selection_score_exists_with_one_validation_track_per_genre():
    """A member that is always right (one-hot) among two noisy ones: late fusion puts its
    weight on it in every fold (1.0). Stacking learns it from one track per genre (1.0 with
    two per genre), but with a single track per genre each fold holds out a genre its
    stacker never saw, and misses it (0.0): a score, not NaN or an error."""
    from music_genre.models.fusion import cross_validated_accuracy

    validation = _predictions("val", 6, 3)  # 2 tracks per genre, then 1 per genre
    labels = validation["cnn"]["label"].to_numpy()
    noisy = [validation[m].filter(like="prob_").to_numpy() for m in ("handcrafted", "transfer")]
    members = [np.eye(len(CLASSES))[labels], *noisy]
    scores = {
        (n, method): cross_validated_accuracy(
            method, [m[:n] for m in members], labels[:n], FusionParams(**PARAMS)
        )
        for n in (6, 3)
        for method in ("late_fusion", "stacking")
    }
    assert scores == {
        (6, "late_fusion"): 1.0,
        (6, "stacking"): 1.0,
        (3, "late_fusion"): 1.0,
        (3, "stacking"): 0.0,
    }


def _trained_members(clip: Path) -> tuple[dict, dict]:
    """What build_predictor loads for a CNN and a handcrafted MLP (untrained networks of the
    right shapes, a scaler fitted on the named feature table), and the parameters."""
    import keras
    from sklearn.preprocessing import StandardScaler

    from music_genre.audio.features import extract_features
    from music_genre.audio.spectrograms import STUDY_SETTINGS, spectrogram_settings
    from tests.pipelines.handcrafted.test_handcrafted import EXTRACTION

    keras.utils.set_random_seed(11)
    cnn = keras.Sequential(
        [
            keras.Input((128, 1280, 1)),
            keras.layers.Rescaling(1 / 80.0),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(CLASSES), activation="softmax"),
        ]
    )
    names = extract_features(str(clip), EXTRACTION).index
    mlp = keras.Sequential(
        [keras.Input((len(names),)), keras.layers.Dense(len(CLASSES), activation="softmax")]
    )
    rows = np.random.default_rng(0).normal(size=(8, len(names)))
    artifacts = {
        "cnn_best_model": cnn,
        "cnn_best_model_info": {"class_names": CLASSES, "variant": "small"},
        "handcrafted_mlp": mlp,
        "handcrafted_scaler": StandardScaler().fit(pd.DataFrame(rows, columns=names)),
        "tracks": pd.DataFrame({"genre": ["Rock", "Folk", "Pop", "Folk"]}),
        "fusion_model": {
            "members": ["cnn", "handcrafted"],
            "class_names": CLASSES,
            "method": "late_fusion",
            "weights": [0.25, 0.75],
        },
    }
    params = {
        "spectrogram": spectrogram_settings({**STUDY_SETTINGS, "pad_mode": "repeat"}),
        # a handcrafted model without its training-audio record: the source decides (#26)
        "handcrafted": {"source": "extract", "extraction": EXTRACTION},
    }
    return artifacts, params


@pytest.mark.slow
def test_build_predictor_makes_the_fusion_of_the_trained_members(clip: Path):
    """`--model fusion` as the command builds it: the members from their own artifacts, the
    fused probabilities the bundle's weighted sum of theirs, and members whose genres are not
    the fusion model's are refused."""
    from music_genre.serving import HandcraftedPredictor, PredictionError, build_predictor

    artifacts, params = _trained_members(clip)
    fused = build_predictor("fusion", artifacts.__getitem__, params, exported=False)
    assert isinstance(fused, FusionPredictor)
    assert fused.label == "fusion (late_fusion of cnn+handcrafted)"
    assert [m.label for m in fused.members] == ["cnn (small)", "handcrafted"]
    assert isinstance(fused.members[1], HandcraftedPredictor)
    result = predict_file(fused, clip)
    assert result.error is None and result.windows == 1
    cnn, handcrafted = (predict_file(m, clip).probabilities for m in fused.members)
    assert result.probabilities == pytest.approx(
        {c: 0.25 * cnn[c] + 0.75 * handcrafted[c] for c in CLASSES}
    )

    artifacts["tracks"] = pd.DataFrame({"genre": ["Rock", "Folk", "Jazz"]})
    with pytest.raises(PredictionError, match=r"fusion: handcrafted predicts \['Folk', 'Jazz'"):
        build_predictor("fusion", artifacts.__getitem__, params, exported=False)


@pytest.mark.slow
def test_a_pickled_cnn_predictor_loads_in_a_fresh_process(tmp_path: Path):
    """The served model pickles the CNN predictor; unpickling must not depend on the caller
    having imported the module that registers the CNN's custom layer."""
    import pickle
    import sys

    import keras

    from music_genre.models.cnn import StudyImageScaling
    from music_genre.serving import CnnPredictor
    from tests.helpers.processes import run_command

    model = keras.Sequential(
        [
            keras.Input((4, 6, 1)),
            StudyImageScaling(),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    path = tmp_path / "predictor.pkl"
    path.write_bytes(
        pickle.dumps(CnnPredictor(model=model, class_names=CLASSES, spectrogram_settings={}))
    )
    code = (
        "import pickle, sys; p = pickle.loads(open(sys.argv[1], 'rb').read()); "
        "print(p.model.output_shape)"
    )
    done = run_command(
        [sys.executable, "-c", code, str(path)],
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("(None, 3)")


# Exact checks of the fusion arithmetic (issue #25, mutation testing): each pins a value or an
# argument a surviving mutant of music_genre.models.fusion changed.


def test_simplex_weights_edges():
    from music_genre.models import fusion

    assert fusion.simplex_weights(1, 1.0).tolist() == [[1.0]]
    assert fusion.simplex_weights(2, 0.5).tolist() == [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    for members, step in ((0, 0.5), (2, 2.0), (2, 0.3)):
        with pytest.raises(ValueError, match="divides 1"):
            fusion.simplex_weights(members, step)


def test_best_weights_ties_go_to_likelihood_then_evenness():
    same = np.array([[0.7, 0.3], [0.2, 0.8]])
    labels = np.array([0, 1])
    # identical members: every weight vector ties on accuracy and likelihood: the even one wins
    assert best_weights([same, same], labels, 0.5).tolist() == [0.5, 0.5]
    assert best_weights([same, same, same], labels, 0.5).tolist() == [0.5, 0.5, 0.0]
    # every candidate misses track 0 with probability 0 (log 0 is clipped, not -inf for all):
    # the member with the higher true-class probability on track 1 wins
    a = np.array([[0.0, 1.0], [0.9, 0.1]])
    b = np.array([[0.0, 1.0], [0.6, 0.4]])
    with np.errstate(divide="ignore"):
        assert best_weights([a, b], np.array([0, 0]), 0.5).tolist() == [1.0, 0.0]


def test_stacker_arguments_and_single_member():
    from music_genre.models import fusion

    members = [np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.2], [0.3, 0.7]])]
    labels = np.array([0, 1, 0, 1])
    default = fusion.fit_stacker(members, labels, seed=7)
    assert (default.C, default.max_iter, default.random_state) == (1.0, 2000, 7)
    assert fusion.fit_stacker(members, labels, seed=7, regularization=0.25).C == 0.25
    probabilities = fusion.stacker_probabilities(default, members, 3)
    assert probabilities.shape == (4, 3) and probabilities[:, 2].tolist() == [0.0] * 4
    assert probabilities.argmax(axis=1).tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="unknown fusion method 'vote'"):
        fusion.fused_probabilities({"method": "vote"}, members)


def _spy(monkeypatch, name):
    from music_genre.models import fusion

    calls = []
    real = getattr(fusion, name)

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(fusion, name, spy)
    return calls


def test_cross_validated_accuracy_counts_every_fold_exactly():
    from music_genre.models.fusion import cross_validated_accuracy

    # identical members whose argmax is right on 6 of 8 tracks, whatever the weights or folds
    labels = np.array([0, 1] * 4)
    p = np.where(np.arange(8)[:, None] < 6, np.eye(2)[labels] * 0.6 + 0.2, np.eye(2)[1 - labels])
    params = {"seed": 0, "weight_step": 0.5}
    assert cross_validated_accuracy("late_fusion", [p, p], labels, FusionParams(**params)) == 0.75
    right = np.eye(2)[np.array([0, 1])] * 0.8 + 0.1
    assert (
        cross_validated_accuracy(
            "late_fusion", [right, right], np.array([0, 1]), FusionParams(**params)
        )
        == 1.0
    )
    assert np.isnan(
        cross_validated_accuracy("late_fusion", [right[:1]], np.array([0]), FusionParams(**params))
    )
    # one member: stacking sizes its output from that member
    assert cross_validated_accuracy("stacking", [p], labels, FusionParams(**params)) == 0.75


def test_cross_validated_accuracy_folds_seed_and_combiner(monkeypatch):
    from music_genre.models import fusion

    stratified = _spy(monkeypatch, "StratifiedKFold")
    plain = _spy(monkeypatch, "KFold")
    stackers = _spy(monkeypatch, "fit_stacker")
    labels = np.array([0, 2] * 6)  # genre 1 has no validation track
    member = np.eye(3)[labels] * 0.7 + 0.1
    params = {"seed": 3, "weight_step": 0.5}
    fusion.cross_validated_accuracy("late_fusion", [member, member], labels, FusionParams(**params))
    assert stratified[-1][1] == {"n_splits": 5, "shuffle": True, "random_state": 3}
    assert not stackers  # late fusion fits no stacker
    fusion.cross_validated_accuracy(
        "late_fusion", [member], labels, FusionParams(**params, cv_folds=2)
    )
    assert stratified[-1][1]["n_splits"] == 2
    fusion.cross_validated_accuracy(
        "late_fusion", [member[:4]], labels[:4], FusionParams(**params)
    )  # 2 a genre
    assert stratified[-1][1]["n_splits"] == 2 and not plain
    fusion.cross_validated_accuracy(
        "late_fusion", [member[:2]], np.array([0, 2]), FusionParams(**params)
    )
    assert plain[-1][1] == {"n_splits": 2, "shuffle": True, "random_state": 3}

    monkeypatch.setattr(fusion, "best_weights", None)  # stacking never calls it
    fusion.cross_validated_accuracy("stacking", [member], labels, FusionParams(**params))
    assert stackers[-1][0][2:] == (3, 1.0)
    fusion.cross_validated_accuracy(
        "stacking", [member], labels, FusionParams(**params, stacking_c=0.5)
    )
    assert stackers[-1][0][2:] == (3, 0.5)


@pytest.mark.parametrize("method", ["late_fusion", "stacking"])
def test_genre_fusion_is_registered_champion_whichever_method_wins(method, tmp_path, monkeypatch):
    """#23: the chosen fusion method logs a loadable pyfunc model (late fusion has no estimator
    of its own), so genre_fusion gets a version with the alias champion; the registered model
    predicts what the fusion node predicted on the test tracks."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from music_genre.datasets.mlflow_registry import MlflowRegisteredModelDataset
    from music_genre.datasets.mlflow_runs import MlflowModelRunsDataset
    from music_genre.pipelines.fusion.nodes import evaluate_fusion, fit_fusion
    from music_genre.tracking.fusion_model import member_input
    from music_genre.tracking.registry import registration_request

    validation, test = _predictions("val", 60, 1), _predictions("test", 60, 2)
    bundle = fit_fusion(*validation.values(), {**PARAMS, "method": method})
    _, chosen, records = evaluate_fusion(bundle, *test.values())
    assert [r["selected"] for r in records] == [method == "late_fusion", method == "stacking"]

    monkeypatch.chdir(tmp_path)  # ./mlruns (the artefacts) goes there
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        mlflow.set_experiment("test")
        runs_index = tmp_path / "fusion_mlflow_runs.csv"
        with mlflow.start_run(run_name="kedro run"):
            MlflowModelRunsDataset(filepath=str(runs_index), pipeline="fusion").save(records)
        runs = pd.read_csv(runs_index)
        ingestion = {"source": "fma", "fma_root": "data/01_raw/demo", "subset": "small"}
        registry = MlflowRegisteredModelDataset(filepath=str(tmp_path / "fusion.json"))
        registry.save(registration_request("fusion", runs, chosen, ingestion))
        assert registry.load()["alias"] == "champion", registry.load()
        version = MlflowClient().get_model_version_by_alias("genre_fusion", "champion")
        assert version.tags["pipeline"] == "fusion"
        assert version.run_id == runs.loc[runs["selected"], "run_id"].item()
        model = mlflow.pyfunc.load_model("models:/genre_fusion@champion")
        fused = model.predict(member_input(test))
    finally:
        mlflow.set_tracking_uri("")
    expected = chosen.set_index(chosen["track_id"].astype(str)).sort_index()
    np.testing.assert_allclose(
        fused[[f"prob_{c}" for c in CLASSES]].to_numpy(),
        expected[[f"prob_{c}" for c in CLASSES]].to_numpy(),
        rtol=1e-6,
    )
    assert fused["predicted"].tolist() == [CLASSES[i] for i in expected["predicted"]]
