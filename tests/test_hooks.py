"""The end-of-run summary picks each pipeline's best model on validation, not on test."""

import pandas as pd

from music_genre.hooks import best_models


def test_best_model_is_chosen_on_validation_and_reports_its_test_accuracy():
    handcrafted = pd.DataFrame(
        {"units": ["(512)", "(64)"], "val_acc": [0.50, 0.60], "test_acc": [0.70, 0.40]}
    )
    transfer = pd.DataFrame(
        {
            "backbone": ["vgg16"],
            "cut_level": ["fc2"],
            "pca_variance": [0.9],
            "classifier": ["svm_rbf"],
            "weights": ["random"],
            "cv_accuracy": [0.3],
            "test_accuracy": [0.25],
        }
    )
    table = best_models(
        {"handcrafted_results": handcrafted, "cnn_results": None, "transfer_results": transfer}
    )
    assert list(table["pipeline"]) == ["handcrafted", "transfer"]
    assert table.iloc[0]["best model"] == "(64)"
    assert table.iloc[0]["test accuracy"] == 0.40
    assert table.iloc[1]["best model"] == "vgg16 fc2 0.9 svm_rbf random"
