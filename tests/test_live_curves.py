"""Live curves (issue #23): a Keras training's MLflow child run is open while it trains, each
epoch's metrics are in the store as the epoch ends, the runs dataset reuses that run, and a
training, node or run that fails leaves no run "running"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from music_genre.datasets.mlflow_runs import MlflowModelRunsDataset
from music_genre.hooks import MlflowRunsHook
from music_genre.tracking import live


def _data(seed: int = 0, n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2, "softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class _Watch:
    """At each epoch's start, what the store holds of the run: status and epochs logged."""

    def __init__(self, run_id: str) -> None:
        self.run_id, self.seen = run_id, []

    def callback(self):
        import keras
        from mlflow.tracking import MlflowClient

        def look(epoch, logs=None):
            client = MlflowClient()
            history = client.get_metric_history(self.run_id, "epoch_val_accuracy")
            self.seen.append((client.get_run(self.run_id).info.status, len(history)))

        return keras.callbacks.LambdaCallback(on_epoch_begin=look)


def test_epochs_are_logged_as_they_end_and_the_dataset_reuses_the_run(mlflow_store, tmp_path):
    mlflow = mlflow_store
    x, y = _data()
    with mlflow.start_run(run_name="kedro run") as parent:
        with live.live_run("handcrafted mlp (2)", {"pipeline": "handcrafted"}) as run_id:
            watch = _Watch(run_id)
            fit = _model().fit(
                x,
                y,
                validation_data=_data(1),
                epochs=3,
                callbacks=[watch.callback(), live.epoch_callback(run_id)],
                verbose=0,
            )
        # while training: the run runs, and holds every epoch that ended before this one
        assert watch.seen == [("RUNNING", 0), ("RUNNING", 1), ("RUNNING", 2)]
        assert run_id in live.open_runs()  # left open for the runs dataset
        record = {
            "run_name": "handcrafted mlp (2)",
            "params": {"units": "(2)"},
            "metrics": {"val_accuracy": 0.5, "test_accuracy": 0.25},
            "history": fit.history,
            "run_id": run_id,
        }
        index = tmp_path / "runs.csv"
        MlflowModelRunsDataset(filepath=str(index), pipeline="handcrafted").save([record])
    assert pd.read_csv(index)["run_id"].tolist() == [run_id]
    assert run_id not in live.open_runs()
    client = mlflow.tracking.MlflowClient()
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert [c.info.run_id for c in children] == [run_id]  # one run, no duplicate
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["pipeline"] == "handcrafted" and run.data.tags["selected"] == "true"
    assert run.data.metrics["val_accuracy"] == 0.5  # the final value, not the last epoch's
    curve = client.get_metric_history(run_id, "epoch_val_accuracy")
    assert [m.step for m in curve] == [0, 1, 2]  # logged once, live: no second copy
    assert [m.value for m in curve] == pytest.approx(fit.history["val_accuracy"])
    assert len(client.get_metric_history(run_id, "epoch_train_loss")) == 3


def test_a_training_that_raises_leaves_its_run_failed(mlflow_store):
    import keras

    mlflow = mlflow_store

    def stop(epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("out of memory")

    x, y = _data()
    with mlflow.start_run(run_name="kedro run"):
        with pytest.raises(RuntimeError, match="out of memory"):
            with live.live_run("cnn: plain", {"pipeline": "cnn"}) as run_id:
                _model().fit(
                    x,
                    y,
                    validation_data=_data(1),
                    epochs=5,
                    callbacks=[
                        live.epoch_callback(run_id),
                        keras.callbacks.LambdaCallback(on_epoch_end=stop),
                    ],
                    verbose=0,
                )
    client = mlflow.tracking.MlflowClient()
    assert client.get_run(run_id).info.status == "FAILED"
    assert len(client.get_metric_history(run_id, "epoch_val_accuracy")) == 2
    assert run_id not in live.open_runs()


@pytest.mark.parametrize("event", ["on_node_error", "on_pipeline_error"])
def test_the_hook_ends_open_runs_failed_when_a_node_or_the_run_fails(mlflow_store, event):
    mlflow = mlflow_store
    with mlflow.start_run(run_name="kedro run"):
        waiting = live.open_run("cnn: plain", {"pipeline": "cnn"})  # trained, not evaluated
        hook = MlflowRunsHook()
        if event == "on_node_error":
            hook.on_node_error(error=RuntimeError("evaluate_cnn failed"), node=None)
        else:
            hook.on_pipeline_error(error=RuntimeError("the run failed"))
    assert mlflow.tracking.MlflowClient().get_run(waiting).info.status == "FAILED"
    assert not live.open_runs()


def test_runs_still_open_after_a_successful_run_end_finished(mlflow_store):
    mlflow = mlflow_store
    with mlflow.start_run(run_name="kedro run --to-nodes train_cnn"):
        waiting = live.open_run("cnn: plain")
        MlflowRunsHook().after_pipeline_run()
    assert mlflow.tracking.MlflowClient().get_run(waiting).info.status == "FINISHED"


def test_without_an_active_run_nothing_is_opened(mlflow_store):
    with live.live_run("handcrafted mlp (2)") as run_id:
        live.log_epoch(run_id, 0, {"loss": 1.0})
    assert run_id is None and not live.open_runs()


def test_every_hyperband_trial_is_a_live_child_run(mlflow_store, tmp_path):
    from music_genre.pipelines.cnn.tuning import _LoggingHyperband

    def build(hp):
        model = _model()
        model.optimizer.learning_rate = hp.Choice("learning_rate", [1e-2, 1e-3])
        return model

    mlflow = mlflow_store
    x, y = _data()
    test_x, test_y = _data(2, n=16)
    with mlflow.start_run(run_name="kedro run") as parent:
        tuner = _LoggingHyperband(
            "tuned",
            build,
            objective="val_accuracy",
            max_epochs=2,
            factor=2,
            seed=0,
            directory=str(tmp_path / "tuning"),
            project_name="p",
            test_data=(test_x, test_y),
        )
        tuner.search(x, y, validation_data=_data(1), verbose=0, callbacks=[])
    client = mlflow.tracking.MlflowClient()
    trials = client.search_runs(
        [parent.info.experiment_id], "tags.hyperband_trial != ''", max_results=100
    )
    assert len(trials) == len(tuner.oracle.trials) >= 2
    assert not live.open_runs()
    for run in trials:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["pipeline"] == "cnn" and run.data.tags["selected"] == "false"
        assert run.info.status == "FINISHED"
        assert "val_accuracy" in run.data.metrics and "learning_rate" in run.data.params
        epochs = client.get_metric_history(run.info.run_id, "epoch_val_accuracy")
        trial = tuner.oracle.get_trial(run.data.tags["hyperband_trial"])
        assert len(epochs) == len(tuner.history(trial.trial_id)["val_accuracy"]) >= 1
        # the test accuracy of the trial's best epoch (its checkpoint, reloaded into a fresh
        # model here), reported beside the score it was chosen on
        assert run.data.metrics["val_accuracy"] == pytest.approx(trial.score)
        best = tuner.load_model(trial).predict(test_x, verbose=0).argmax(axis=1)
        assert run.data.metrics["test_accuracy"] == pytest.approx(np.mean(best == test_y))
        assert run.data.metrics["test_tracks"] == 16
