"""The one rule that chooses every pipeline's best configuration (music_genre.selection)."""

import numpy as np
import pandas as pd

from music_genre.selection import BEST_MODEL_RULES, best_row, rank, select_best


def _handcrafted(val_acc, val_loss, parameters):
    return pd.DataFrame(
        {
            "units": [f"({i})" for i in range(len(val_acc))],
            "parameters": parameters,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "test_acc": [0.5] * len(val_acc),
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
    assert select_best(table.assign(val_acc=np.nan), "handcrafted") is None


def test_cnn_uses_val_loss_then_params_and_transfer_the_cv_spread():
    cnn = pd.DataFrame(
        {
            "variant": ["cnn", "cnn_augmented", "tuned_cnn"],
            "params": [100, 50, 50],
            "val_acc": [0.6, 0.6, 0.6],
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
