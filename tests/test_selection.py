"""The one rule that chooses every pipeline's best configuration (music_genre.models.selection)."""

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from music_genre.contracts import BEST_MODEL_RULES
from music_genre.models.selection import best_row, rank, select_best


def _handcrafted(val_accuracy, val_loss, parameters):
    return pd.DataFrame(
        {
            "units": [f"({i})" for i in range(len(val_accuracy))],
            "parameters": parameters,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "test_accuracy": [0.5] * len(val_accuracy),
        }
    )


def test_highest_accuracy_wins_whatever_the_loss():
    table = _handcrafted([0.70, 0.80, 0.75], [0.1, 2.0, 0.2], [10, 99, 5])
    assert select_best(table, "handcrafted") == 1


def test_tie_on_accuracy_goes_to_the_lower_validation_loss():
    # issue #23's demo: (512, 512) came first, (512) had the lower loss
    table = _handcrafted([0.8125, 0.8125, 0.70], [1.09, 0.94, 0.10], [400_000, 150_000, 1])
    assert select_best(table, "handcrafted") == 1
    assert best_row(table, "handcrafted_results")["units"] == "(1)"


def test_tie_on_accuracy_and_loss_goes_to_fewer_parameters_then_to_table_order():
    table = _handcrafted([0.8, 0.8, 0.8, 0.8], [0.5, 0.5, 0.5, 0.5], [300, 200, 200, 250])
    assert rank(table, "handcrafted") == [1, 2, 3, 0]


def test_missing_values_lose_ties_and_an_empty_table_has_no_best():
    table = _handcrafted([np.nan, 0.8, 0.8], [0.1, np.nan, 0.9], [1, 1, 1])
    assert select_best(table, "handcrafted") == 2
    assert select_best(table.iloc[:0], "handcrafted") is None
    assert select_best(table.assign(val_accuracy=np.nan), "handcrafted") is None


def test_cnn_uses_val_loss_then_params_and_transfer_the_cv_spread():
    cnn = pd.DataFrame(
        {
            "variant": ["cnn", "cnn_augmented", "tuned_cnn"],
            "params": [100, 50, 50],
            "val_accuracy": [0.6, 0.6, 0.6],
            "val_loss": [1.0, 1.0, 0.9],
        }
    )
    assert select_best(cnn, "cnn") == 2
    assert select_best(cnn.assign(val_loss=1.0), "cnn") == 1
    transfer = pd.DataFrame({"cv_accuracy": [0.55, 0.55, 0.5], "cv_accuracy_std": [0.05, 0.02, 0]})
    assert BEST_MODEL_RULES["transfer_results"].tie_breakers == ("cv_accuracy_std",)
    assert select_best(transfer, "transfer") == 1
    # a table without the tie-break columns falls back on table order
    assert select_best(transfer.drop(columns="cv_accuracy_std"), "transfer") == 0


def test_positions_not_labels():
    table = _handcrafted([0.7, 0.8], [0.1, 0.2], [1, 1]).set_index(pd.Index([5, 5]))
    assert select_best(table, "handcrafted") == 1


# -- the saved model, best_models.csv and the terminal summary name the same configuration ------
# issue #23's demo: every MLP at val 0.8125, test 0.625; (512) has the lowest validation loss
DEMO = {
    (512, 512): {"val_accuracy": 0.8125, "val_loss": 1.09, "parameters": 400_000},
    (512,): {"val_accuracy": 0.8125, "val_loss": 0.94, "parameters": 150_000},
    (64,): {"val_accuracy": 0.8125, "val_loss": 0.99, "parameters": 20_000},
    (32, 32): {"val_accuracy": 0.75, "val_loss": 0.50, "parameters": 10_000},
}


def _fake_train_one(data, names, hidden_units, params):
    """A trained configuration without training: its metrics come from DEMO."""
    demo = DEMO[tuple(hidden_units)]
    label = "(" + ", ".join(map(str, hidden_units)) + ")"
    metrics = {
        "train_loss": 0.1,
        "val_loss": demo["val_loss"],
        "test_loss": 1.2,
        "train_accuracy": 1.0,
        "val_accuracy": demo["val_accuracy"],
        "test_accuracy": 0.625,
        "test_ci_low": 0.39,
        "test_ci_high": 0.82,
        "test_tracks": 16,
    }
    record = {
        "run_name": f"MLP {label}",
        "params": {"units": label, "parameters": demo["parameters"]},
        "metrics": metrics,
        "tags": {},
    }
    return record, f"model {label}"


def _model_input():
    index = pd.MultiIndex.from_tuples(
        [
            (f"{split}{i}", split, i % 2, ["blues", "rock"][i % 2])
            for split in ("training", "validation", "test")
            for i in range(2)
        ],
        names=["track_id", "split", "label", "genre"],
    )
    return pd.DataFrame({"f0": np.arange(6.0), "f1": np.ones(6)}, index=index)


def test_saved_model_best_models_csv_and_terminal_summary_agree_on_a_tie(monkeypatch):
    import music_genre.infra.accelerator
    from music_genre.hooks import best_models
    from music_genre.pipelines.handcrafted import mlp as handcrafted
    from music_genre.pipelines.reporting.nodes import best_model_table

    monkeypatch.setattr(handcrafted, "_train_one", _fake_train_one)
    monkeypatch.setattr(music_genre.infra.accelerator, "log_compute_device", lambda: "")
    # the project's MLP settings (the node validates them), with the tie's sweep
    base = yaml.safe_load(
        (Path(__file__).parents[1] / "conf/base/parameters/handcrafted.yml").read_text()
    )
    params = {**base["handcrafted"]["mlp"], "hidden_units": [list(units) for units in DEMO]}
    records, results, saved = handcrafted.train_mlp_sweep(_model_input(), params)

    assert saved == "model (512)"  # tied with (512, 512) on accuracy, lower loss
    assert [r["selected"] for r in records] == [False, True, False, False]
    paper = pd.DataFrame(
        [("handcrafted", "mlp", "(512, 256)", "accuracy", "test", 0.495)],
        columns=["pipeline", "model", "variant", "metric", "split", "value"],
    )
    report = best_model_table(results, None, None, None, paper)
    summary = best_models({"handcrafted_results": results})
    assert report.loc[0, "model"].startswith("(512) ")
    assert summary.loc[0, "best model"].startswith("(512) ")

    # tied on loss as well: fewer parameters, everywhere
    monkeypatch.setitem(DEMO[(64,)], "val_loss", 0.94)
    _, results, saved = handcrafted.train_mlp_sweep(_model_input(), params)
    assert saved == "model (64)"
    assert best_model_table(results, None, None, None, paper).loc[0, "model"].startswith("(64) ")
    assert best_models({"handcrafted_results": results}).loc[0, "best model"].startswith("(64) ")


def test_the_served_predictor_run_carries_the_packaged_configurations_metrics():
    """#23: the genre predictor's child run has the vocabulary's held-out and test accuracy of
    the configuration it packages (the tie goes to the lower validation loss: row 1)."""
    from music_genre.pipelines.serving.nodes import _packaged_metrics

    table = _handcrafted([0.8, 0.8, 0.6], [1.1, 0.9, 0.1], [10, 20, 5]).assign(
        test_accuracy=[0.5, 0.625, 0.9]
    )
    metrics = _packaged_metrics("handcrafted", {"handcrafted": table})
    assert metrics == {"val_accuracy": 0.8, "val_loss": 0.9, "test_accuracy": 0.625}
    assert _packaged_metrics("fusion", {"handcrafted": table}) == {}
