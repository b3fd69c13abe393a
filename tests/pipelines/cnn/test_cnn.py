"""CNN pipeline: the study's architecture, input scaling, streams, Hyperband resume, and the
whole pipeline (four variants, one epoch each) on tiny random spectrograms."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner

from music_genre.audio.augment import augmented_key, spec_augment
from music_genre.audio.spectrograms import to_study_image
from music_genre.datasets import KerasModelDataset
from music_genre.models.cnn import StudyImageScaling, build_cnn, trainable_parameters
from music_genre.pipelines.cnn import create_pipeline, nodes, tuning
from tests.helpers.numeric import assert_same_network_output
from tests.helpers.processes import run_command

ROOT = Path(__file__).resolve().parents[3]

GENRES = ["Folk", "Hip-Hop", "Rock"]
SHAPE = (128, 64)  # the model resizes any (n_mels, frames) to 128 x 128; small = fast tests
AUGMENTATION = {
    "freq_mask_max_width": 27,
    "time_mask_max_width": 20,
    "mask_value": "image_zero",
    "seed": 7,
}


# conf/base/parameters/cnn.yml's cnn.variants: the study's four (Tables 4-6)
STUDY_VARIANTS = {
    "cnn": {"augmented": False, "tuned": False, "report_model": "kostrzewa"},
    "cnn_augmented": {"augmented": True, "tuned": False, "report_model": "kostrzewa"},
    "tuned_cnn": {"augmented": False, "tuned": True, "report_model": "tuned"},
    "tuned_cnn_augmented": {"augmented": True, "tuned": True, "report_model": "tuned"},
}


def _params(tmp_path: Path, **tuning) -> dict:
    return {
        "seed": 1,
        "augmentation_mode": "materialized",
        "quantize": True,
        "batch_norm_momentum": 0.99,
        "verbose": 0,
        "architecture": {"filters": [8, 8, 16, 16], "kernel_size": 5, "dropout": 0.2},
        "training": {
            "learning_rate": 1e-3,
            "batch_size": 8,
            "epochs": 1,
            "early_stopping": {"monitor": "loss", "patience": 5, "restore_best_weights": True},
        },
        "tuning": {
            "objective": "val_accuracy",
            "max_epochs": 1,
            "factor": 3,
            "hyperband_iterations": 1,
            "early_stopping": True,
            "directory": str(tmp_path / "hyperband"),
            "search_space": {
                "kernel_size": {"min": 3, "max": 4},
                "filters": {"min": 4, "max": 8, "step": 1},
                "dropout": [0.2, 0.25, 0.5],
                "learning_rate": [0.01, 0.001, 0.0001],
            },
            **tuning,
        },
        "evaluation": {"batch_size": 8},
        "timing": {"seed": 0, "warmup": 1, "repeats": 2, "throughput_clips": 4, "batch_size": 4},
        "variants": {name: dict(spec) for name, spec in STUDY_VARIANTS.items()},
    }


def _spectrogram(seed: int, label: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spec = rng.normal(-50.0, 8.0, size=SHAPE).astype(np.float32)
    spec[20 * label : 20 * label + 20] += 25.0  # a genre-specific band: something to learn
    return spec


@pytest.fixture
def data() -> dict:
    """3 genres x (4 training, 2 validation, 2 test) tracks, their spectrograms (lazy, as the
    store loads them) and the training tracks' two masked copies."""
    rows, store, augmented = [], {}, {}
    for label, genre in enumerate(GENRES):
        for i, split in enumerate(["training"] * 4 + ["validation"] * 2 + ["test"] * 2):
            track_id = f"{label * 100 + i:06d}"
            rows.append({"track_id": track_id, "genre": genre, "label": label, "split": split})
            spec = _spectrogram(label * 100 + i, label)
            store[track_id] = functools.partial(np.array, spec)
            if split == "training":
                for kind in ("freq_mask", "time_mask"):
                    rng = np.random.default_rng(label * 100 + i)
                    masked = spec_augment(spec, kind, rng, AUGMENTATION)
                    augmented[augmented_key(track_id, kind)] = functools.partial(np.array, masked)
    return {"tracks": pd.DataFrame(rows), "log_mel": store, "augmented": augmented}


# ------------------------------------------------------------------------------------------------
def test_study_cnn_has_exactly_735944_trainable_parameters():
    model = build_cnn(8, input_shape=(128, 1280, 1))
    assert trainable_parameters(model) == 735_944
    assert model.get_layer("flatten").output.shape[-1] == 2048


@pytest.mark.numeric
def test_the_compiled_call_predicts_what_model_predict_does():
    from music_genre.models.cnn import compiled_predictor, predict_probabilities

    model = build_cnn(3, filters=[4, 4, 8, 8], input_shape=(*SHAPE, 1))
    specs = np.stack([_spectrogram(s, s % 3) for s in range(5)])[..., None]
    compiled = compiled_predictor(model)
    expected = model.predict(specs, verbose=0)
    # Another batch size lets oneDNN pick another convolution kernel (another summation order):
    # float32 rounding (tests/helpers/numeric.py), measured up to 1.2e-6 on a probability (CI,
    # 2026-12-02); a real difference (a wrong layer, training=True) is orders larger.
    assert_same_network_output(predict_probabilities(compiled, specs, 2), expected, model)
    assert_same_network_output(compiled(specs[:1]).numpy(), expected[:1], model)  # one clip


@pytest.mark.numeric
@pytest.mark.parametrize("quantize", [True, False])
def test_scaling_layer_equals_the_study_image(quantize: bool):
    rng = np.random.default_rng(3)
    specs = rng.normal(-40.0, 15.0, size=(3, 128, 1280)).astype(np.float32)
    specs[2] = -12.5  # a constant spectrogram: no division by zero
    scaled = np.asarray(StudyImageScaling(quantize=quantize)(specs[..., None]))[..., 0]
    expected = np.stack([to_study_image(s, quantize=quantize) for s in specs])
    np.testing.assert_array_equal(scaled, expected)
    assert scaled.min() >= 0 and scaled.max() <= 255


@pytest.mark.numeric
def test_input_scaling_is_identical_in_training_prediction_and_after_reload(tmp_path: Path):
    model = build_cnn(3, filters=[4, 4, 8, 8], input_shape=(*SHAPE, 1))
    specs = np.stack([_spectrogram(s, s % 3) for s in range(4)])[..., None]
    image = keras.Model(model.inputs, model.get_layer("study_image").output)
    expected = np.stack([to_study_image(s) for s in specs[..., 0]])[..., None]
    # training mode (what fit sees), inference mode (what predict sees)
    np.testing.assert_array_equal(np.asarray(image([specs], training=True)), expected)
    np.testing.assert_array_equal(image.predict(specs, verbose=0), expected)

    dataset = KerasModelDataset(filepath=str(tmp_path / "model.keras"))
    dataset.save(model)
    reloaded = dataset.load()
    assert isinstance(reloaded.get_layer("study_image"), StudyImageScaling)
    reloaded_image = keras.Model(reloaded.inputs, reloaded.get_layer("study_image").output)
    np.testing.assert_array_equal(reloaded_image.predict(specs, verbose=0), expected)
    np.testing.assert_allclose(
        reloaded.predict(specs, verbose=0), model.predict(specs, verbose=0), rtol=1e-6, atol=1e-7
    )
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file left behind"


def test_select_reports_every_left_out_spectrogram(data: dict, tmp_path: Path):
    store = dict(data["log_mel"])
    del store["000001"]  # no spectrogram
    store["000002"] = functools.partial(np.full, (128, 32), -20.0, dtype=np.float32)  # other shape
    store["000104"] = functools.partial(np.full, SHAPE, np.nan, dtype=np.float32)  # not finite
    augmented = dict(data["augmented"])
    del augmented[augmented_key("000100", "time_mask")]
    augmented[augmented_key("000104", "freq_mask")] = store["000000"]  # a validation track

    items, skipped = nodes.select_cnn_items(data["tracks"], store, augmented, _params(tmp_path))
    reasons = dict(zip(skipped["key"], skipped["reason"], strict=True))
    assert "not in log_mel_spectrograms" in reasons["000001"]
    assert "shape (128, 32) differs" in reasons["000002"]
    assert "NaN" in reasons["000104"]
    assert "not in augmented_spectrograms" in reasons["000100__time_mask"]
    assert "no training track" in reasons["000104__freq_mask"]
    for orphan in (
        "000001__freq_mask",
        "000001__time_mask",
        "000002__freq_mask",
        "000002__time_mask",
    ):
        assert reasons[orphan] == "its original spectrogram is left out"
    assert len(skipped) == 9
    assert set(items["key"]).isdisjoint(reasons)
    originals = items[items["copy"] == "original"]
    assert len(originals) == 24 - 3
    assert (items[items["copy"] != "original"]["split"] == "training").all()

    on_the_fly = {**_params(tmp_path), "augmentation_mode": "on_the_fly"}
    items, skipped = nodes.select_cnn_items(data["tracks"], data["log_mel"], {}, on_the_fly)
    assert len(skipped) == 0 and (items["copy"] == "original").all()


def test_on_the_fly_mode_needs_no_stored_augmented_copies(data: dict, tmp_path: Path):
    from music_genre.datasets import SpectrogramStoreDataset

    never_written = SpectrogramStoreDataset(str(tmp_path / "augmented"), allow_missing=True)
    assert never_written.may_be_absent and not never_written.exists()
    empty = never_written.load()
    on_the_fly = {**_params(tmp_path), "augmentation_mode": "on_the_fly"}
    items, skipped = nodes.select_cnn_items(data["tracks"], data["log_mel"], empty, on_the_fly)
    assert len(skipped) == 0 and len(items) == 24
    with pytest.raises(ValueError, match="--pipelines=augmentation.*on_the_fly"):
        nodes.select_cnn_items(data["tracks"], data["log_mel"], empty, _params(tmp_path))
    with pytest.raises(DatasetError, match="kedro run --pipelines=spectrogram"):
        SpectrogramStoreDataset(str(tmp_path / "augmented")).load()  # required: still an error


def test_augmented_variants_never_fall_back_to_originals_only(data: dict, tmp_path: Path):
    items, skipped = nodes.select_cnn_items(data["tracks"], data["log_mel"], {}, _params(tmp_path))
    assert (
        skipped["reason"] == "not in augmented_spectrograms (see that pipeline's bad-tracks report)"
    ).sum() == 24
    with pytest.raises(ValueError, match="run the augmentation pipeline first"):
        nodes._training_stream(
            items,
            data["log_mel"],
            {},
            nodes.cnn_settings(_params(tmp_path)),
            AUGMENTATION,
            augmented=True,
        )


def test_select_refuses_a_genre_without_training_data(data: dict, tmp_path: Path):
    store = {k: v for k, v in data["log_mel"].items() if not k.startswith("0000")}
    with pytest.raises(ValueError, match="No usable training spectrogram for genres \\['Folk'\\]"):
        nodes.select_cnn_items(data["tracks"], store, data["augmented"], _params(tmp_path))


def test_on_the_fly_masks_are_drawn_anew_every_epoch(data: dict, tmp_path: Path):
    params = {**_params(tmp_path), "augmentation_mode": "on_the_fly"}
    items, _ = nodes.select_cnn_items(data["tracks"], data["log_mel"], {}, params)
    stream, n = nodes._training_stream(
        items, data["log_mel"], {}, nodes.cnn_settings(params), AUGMENTATION, augmented=True
    )
    assert n == 3 * 12  # the study's "training set x 3"
    training = items.loc[items["split"] == "training", "track_id"]
    originals = {k: data["log_mel"][k]() for k in training}
    epochs = [np.concatenate([x.numpy() for x, _ in stream])[..., 0] for _ in range(2)]
    for epoch in epochs:
        # every array is one training track, whole or with one band set to its maximum
        nearest = []
        for spec in epoch:
            track = min(originals, key=lambda k: np.sum(originals[k] != spec))
            changed = originals[track] != spec
            assert np.all(spec[changed] == originals[track].max())
            nearest.append(track)
        assert sorted(nearest) == sorted(list(training) * 3)
        assert sum(any(np.array_equal(o, s) for o in originals.values()) for s in epoch) >= 12
    # the masks are fresh draws every epoch, not fixed copies
    assert sorted(a.tobytes() for a in epochs[0]) != sorted(a.tobytes() for a in epochs[1])


class _Kept(MemoryDataset):
    """A MemoryDataset the runner cannot release, so the test can read intermediate outputs."""

    def _release(self) -> None:
        pass


@pytest.mark.slow
def test_pipeline_trains_and_reports_four_variants(data: dict, tmp_path: Path):
    pipeline = create_pipeline(STUDY_VARIANTS)
    catalog = DataCatalog(
        {
            "tracks": MemoryDataset(data["tracks"]),
            "log_mel_spectrograms": MemoryDataset(data["log_mel"], copy_mode="assign"),
            "augmented_spectrograms": MemoryDataset(data["augmented"], copy_mode="assign"),
            "params:cnn": MemoryDataset(_params(tmp_path)),
            "params:augmentation": MemoryDataset(AUGMENTATION),
            **{name: _Kept(copy_mode="assign") for name in pipeline.all_outputs()},
        }
    )
    SequentialRunner().run(pipeline, catalog)

    results = catalog.load("cnn_results")
    assert results.columns.tolist() == nodes.RESULT_COLUMNS
    assert results["variant"].tolist() == list(STUDY_VARIANTS)
    for column in ("train_accuracy", "val_accuracy", "test_accuracy"):
        assert results[column].between(0, 1).all()
    assert (results[["train_loss", "val_loss", "test_loss"]] > 0).all().all()
    assert (results["inference_seconds"] > 0).all() and (results["clips_per_second"] > 0).all()
    assert (results["predict_call_seconds"] > 0).all()
    assert results.loc[0, "params"] == trainable_parameters(catalog.load("cnn.cnn_model"))

    plain = catalog.load("cnn.cnn_training_log")
    augmented = catalog.load("cnn_augmented.cnn_training_log")
    assert plain["epochs_trained"] == 1 and plain["training_items"] == 12
    assert augmented["training_items"] == 36 and augmented["augmentation_mode"] == "materialized"
    assert set(plain["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}

    best = catalog.load("tuned_cnn.cnn_best_hyperparameters")
    assert [t["status"] for t in best["trials"]] == ["COMPLETED"]  # max_epochs 1: one trial
    assert best["best_score"] == best["trials"][0]["score"] is not None
    assert set(best["values"]) == {
        "kernel_size",
        "filters_1",
        "filters_2",
        "filters_3",
        "filters_4",
        "dropout",
        "learning_rate",
    }
    tuned = catalog.load("tuned_cnn.cnn_training_log")["architecture"]
    assert tuned["kernel_size"] == best["values"]["kernel_size"]
    assert tuned["learning_rate"] == best["values"]["learning_rate"]
    assert tuned["filters"] == [best["values"][f"filters_{i}"] for i in range(1, 5)]
    assert Path(best["search"]["project_dir"]).is_dir()

    runs = catalog.load("cnn_mlflow_runs")
    assert [r["run_name"] for r in runs] == [f"cnn: {v}" for v in STUDY_VARIANTS]
    for run in runs:
        assert isinstance(run["model"], keras.Model)
        assert set(run["figures"]) == {"confusion_matrix.png", "learning_curves.png"}
        assert len(run["history"]["val_accuracy"]) == run["params"]["epochs_trained"]
    # every Hyperband trial (hyperparameters, score, per-epoch metrics) as an MLflow artifact
    assert runs[2]["dicts"] == {"hyperband_trials.json": best["trials"]}
    assert all(t["history"]["val_accuracy"] for t in best["trials"])
    assert runs[0]["dicts"] == {}
    info = catalog.load("cnn_best_model_info")
    assert info["variant"] == results.loc[results["val_accuracy"].idxmax(), "variant"]
    assert info["class_names"] == GENRES
    # 95 % Wilson intervals around test accuracies; the best variant's per-track predictions
    assert (
        (results["test_ci_low"] <= results["test_accuracy"])
        & (results["test_accuracy"] <= results["test_ci_high"])
    ).all()
    best_row = results.loc[results["variant"] == info["variant"]].iloc[0]
    test = catalog.load("cnn_test_predictions")
    assert len(test) == best_row["test_tracks"]
    assert (test["predicted"] == test["label"]).mean() == pytest.approx(best_row["test_accuracy"])
    assert list(test.columns) == ["track_id", "label", "predicted", *[f"prob_{g}" for g in GENRES]]
    validation = catalog.load("cnn_validation_predictions")
    assert 0 < len(validation) and set(validation["track_id"]) <= set(
        data["tracks"].loc[data["tracks"]["split"] == "validation", "track_id"].astype(str)
    )


@pytest.mark.slow
def test_hyperband_resumes_after_an_interruption(data: dict, tmp_path: Path, monkeypatch):
    params = _params(tmp_path, max_epochs=2, factor=3)  # one bracket: 2 trials of 2 epochs
    items, _ = nodes.select_cnn_items(data["tracks"], data["log_mel"], data["augmented"], params)

    class Interrupt(keras.callbacks.Callback):
        trials_started = 0  # class attribute: keras-tuner deep-copies callbacks per trial

        def on_train_begin(self, logs=None):
            type(self).trials_started += 1
            if type(self).trials_started == 2:
                raise KeyboardInterrupt("simulated interruption during the second trial")

    monkeypatch.setattr(tuning, "_early_stopping", lambda settings: Interrupt())
    with pytest.raises(KeyboardInterrupt):
        tuning.tune_cnn_hyperparameters(
            items, data["log_mel"], data["augmented"], params, AUGMENTATION, variant="tuned_cnn"
        )
    project = (
        tmp_path
        / "hyperband"
        / f"tuned_cnn_{tuning.search_fingerprint(items, params, AUGMENTATION, 'tuned_cnn')}"
    )
    assert (project / "oracle.json").is_file()
    finished = {}
    for path in project.glob("trial_*/trial.json"):
        trial = json.loads(path.read_text())
        if trial["status"] == "COMPLETED":
            finished[trial["trial_id"]] = trial["score"]
    assert len(finished) == 1
    monkeypatch.undo()

    built = []
    original_build = tuning.StudyCnnHyperModel.build
    monkeypatch.setattr(
        tuning.StudyCnnHyperModel,
        "build",
        lambda self, hp: built.append(hp.values) or original_build(self, hp),
    )
    first = tuning.tune_cnn_hyperparameters(
        items, data["log_mel"], data["augmented"], params, AUGMENTATION, variant="tuned_cnn"
    )
    assert [t["status"] for t in first["trials"]] == ["COMPLETED"] * 2
    # the per-epoch metrics of the trial finished before the interruption too
    assert all(len(t["history"]["val_accuracy"]) == 2 for t in first["trials"])
    assert len(built) == 1, "the finished trial was reloaded, not trained again"
    assert {
        t["trial_id"]: t["score"] for t in first["trials"] if t["trial_id"] in finished
    } == finished

    built.clear()
    again = tuning.tune_cnn_hyperparameters(
        items, data["log_mel"], data["augmented"], params, AUGMENTATION, variant="tuned_cnn"
    )
    assert built == [] and again["trials"] == first["trials"] and again["values"] == first["values"]


def test_hyperband_prints_one_line_per_trial(
    data: dict, tmp_path: Path, capfd, caplog, monkeypatch, mlflow_store
):
    """keras-tuner's own display (a hyperparameter table per trial) and Keras' epoch lines stay
    off the terminal even at verbose 2, as conf/base sets it: each trial is one log line there,
    and the epochs and hyperparameters go to the detail logger (conf/logging.yml: file only).
    Each trial's MLflow child run has its val_accuracy and its model's test accuracy (#23)."""
    params = {**_params(tmp_path, max_epochs=2, factor=3), "verbose": 2}  # 2 trials
    items, _ = nodes.select_cnn_items(data["tracks"], data["log_mel"], data["augmented"], params)
    # only pytest's capturing handlers: what reaches the terminal here is printed, not logged
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [h for h in root.handlers if h is caplog.handler])
    capfd.readouterr()
    with (
        caplog.at_level("INFO", logger="music_genre"),
        mlflow_store.start_run(run_name="kedro run") as parent,
    ):
        result = tuning.tune_cnn_hyperparameters(
            items, data["log_mel"], data["augmented"], params, AUGMENTATION, variant="tuned_cnn"
        )
    captured = capfd.readouterr()
    # TensorFlow's C++ runtime logs on its own (e.g. "I0000 ... generator_dataset_op.cc")
    printed = [
        line
        for line in (captured.out + captured.err).splitlines()
        if not re.match(r"[IWE]\d{4} ", line)
    ]
    assert printed == []
    assert len(result["trials"]) == 2
    summary = [r.getMessage() for r in caplog.records if r.name == tuning.logger.name]
    trial_lines = [line for line in summary if ": trial " in line]
    assert len(trial_lines) == 2 and all("\n" not in line for line in trial_lines)
    for line, trial in zip(trial_lines, result["trials"], strict=True):
        assert f"trial {trial['trial_id']} COMPLETED, val_accuracy {trial['score']:.3f}" in line
    detail = [r.getMessage() for r in caplog.records if r.name == tuning.trial_logger.name]
    for trial in result["trials"]:  # the hyperparameters: in the detail
        assert f'"kernel_size": {trial["values"]["kernel_size"]}' in "".join(
            line for line in detail if f"trial {trial['trial_id']} starts: " in line
        )
    assert sum(" epoch 1/2: " in line for line in detail) == 2  # every epoch of both trials
    assert sum(" epoch 2/2: " in line for line in detail) == 2
    for trial in result["trials"]:
        assert len(trial["history"]["val_accuracy"]) == 2
        assert max(trial["history"]["val_accuracy"]) == pytest.approx(trial["score"])

    runs = mlflow_store.tracking.MlflowClient().search_runs(
        [parent.info.experiment_id], "tags.hyperband_trial != ''"
    )
    scores = {t["trial_id"]: t["score"] for t in result["trials"]}
    assert sorted(r.data.tags["hyperband_trial"] for r in runs) == sorted(scores)
    n_test = int((data["tracks"]["split"] == "test").sum())
    for run in runs:
        metrics = run.data.metrics
        assert metrics["val_accuracy"] == pytest.approx(scores[run.data.tags["hyperband_trial"]])
        assert metrics["test_tracks"] == n_test == 6
        # an accuracy over the 6 test tracks, inside its Wilson interval
        assert metrics["test_accuracy"] * n_test == pytest.approx(
            round(metrics["test_accuracy"] * n_test)
        )
        assert metrics["test_ci_low"] <= metrics["test_accuracy"] <= metrics["test_ci_high"]
        assert np.isfinite(metrics["test_loss"]) and metrics["test_loss"] > 0


def test_conf_logging_sends_hyperband_detail_to_the_log_file_only(tmp_path: Path):
    # In a fresh interpreter: dictConfig closes every handler of this process (pytest's own
    # capture among them), which later broke the session with "I/O operation on closed file".
    code = (
        "import logging.config, sys, yaml\n"
        "from music_genre.pipelines.cnn import tuning\n"
        "logging.config.dictConfig(yaml.safe_load(open(sys.argv[1])))\n"
        "tuning.trial_logger.info('DETAIL trial 0000 epoch 1/2')\n"
        "tuning.logger.info('SUMMARY trial 0000 COMPLETED')\n"
    )
    config = Path(__file__).parents[3] / "conf" / "logging.yml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}
    # cwd: info.log is relative to the working directory
    done = run_command(
        [sys.executable, "-c", code, str(config)], timeout=120, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    terminal = done.stdout + done.stderr
    log_file = (tmp_path / "info.log").read_text()
    assert "SUMMARY trial 0000 COMPLETED" in terminal and "DETAIL" not in terminal
    assert "DETAIL trial 0000 epoch 1/2" in log_file and "SUMMARY trial 0000" in log_file


def test_run_records_log_their_json_artifacts_to_mlflow(tmp_path: Path, monkeypatch):
    import mlflow
    from mlflow.tracking import fluent

    from music_genre.datasets import MlflowModelRunsDataset

    previous = mlflow.get_tracking_uri()
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment(
            "cnn-test", artifact_location=(tmp_path / "artifacts").as_uri()
        )
        mlflow.set_experiment(experiment_id=experiment)
        trials = [{"trial_id": "0000", "score": 0.5, "history": {"val_accuracy": [0.25, 0.5]}}]
        MlflowModelRunsDataset(filepath=str(tmp_path / "runs.csv"), pipeline="cnn").save(
            [{"run_name": "cnn: tuned_cnn", "dicts": {"hyperband_trials.json": trials}}]
        )
        run_id = pd.read_csv(tmp_path / "runs.csv")["run_id"].iloc[0]
        logged = mlflow.artifacts.load_dict(f"runs:/{run_id}/hyperband_trials.json")
    finally:
        mlflow.set_tracking_uri(previous)
    assert logged == trials


def test_best_variant_on_a_validation_tie_is_the_lower_validation_loss(monkeypatch):
    """#23: cnn_best is chosen by music_genre.models.selection's rule, as best_models.csv names it
    (accuracy, then validation loss, then fewer parameters, then table order); no training."""
    monkeypatch.setattr(nodes, "_run_record", lambda evaluation, model: {})

    def evaluation(variant, val_loss, params):
        return {
            "variant": variant,
            "params": params,
            "metrics": {"val_accuracy": 0.75, "val_loss": val_loss, "test_accuracy": 0.5},
            "class_names": ["blues", "rock"],
            "training": {"input_shape": [128, 128, 1], "architecture": {}},
        }

    evaluations = [
        evaluation("cnn", 1.2, 100),
        evaluation("cnn_augmented", 0.9, 100),
        evaluation("tuned_cnn", 0.9, 80),
        evaluation("tuned_cnn_augmented", 1.5, 10),
    ]
    results, _, model, info = nodes.report_cnn_results(
        *evaluations, *(e["variant"] for e in evaluations)
    )
    assert model == "tuned_cnn" and info["variant"] == "tuned_cnn"
    from music_genre.pipelines.reporting.nodes import best_model_table

    paper = pd.DataFrame(columns=["pipeline", "model", "variant", "metric", "split", "value"])
    assert best_model_table(None, results, None, None, paper).loc[0, "model"] == "tuned_cnn"
