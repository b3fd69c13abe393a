"""Reporting: study rows line up with this run's rows; missing pipelines read as missing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import CSVDataset

from music_genre.datasets import OptionalCSVDataset
from music_genre.pipelines.reporting import create_pipeline
from music_genre.pipelines.reporting.nodes import (
    classifier_label,
    compare_with_study,
    units_label,
)

PAPER = pd.DataFrame(
    [
        ("handcrafted", "mlp", "(512, 256)", "accuracy", "test", 0.495),
        ("handcrafted", "mlp", "(64)", "accuracy", "test", 0.465),
        ("cnn", "kostrzewa", "plain", "accuracy", "test", 0.3975),
        (
            "transfer",
            "resnet50 conv5_block1_2_relu pca0.90 (1321 comp)",
            "svm_rbf",
            "accuracy",
            "test",
            0.5012,
        ),
    ],
    columns=["pipeline", "model", "variant", "metric", "split", "value"],
)
HANDCRAFTED = pd.DataFrame(
    {
        "units": ["(512, 256)", "(64)", "(32)"],
        "parameters": [399112, 33736, 16872],
        "train_loss": [1.0, 1.1, 1.2],
        "val_loss": [1.3, 1.4, 1.5],
        "test_loss": [1.6, 1.7, 1.8],
        "train_acc": [0.8, 0.7, 0.6],
        "val_acc": [0.6, 0.55, 0.5],
        "test_acc": [0.52, 0.47, 0.4],
    }
)
TRANSFER = pd.DataFrame(
    {
        "backbone": ["resnet50"],
        "cut_level": ["conv5_block1_2_relu"],
        "feature_size": [25088],
        "pca_variance": [0.9],
        "n_components": [1200],
        "classifier": ["svc_rbf"],
        "best_params": ["{'C': 10}"],
        "cv_accuracy": [0.55],
        "test_accuracy": [0.51],
        "weights": ["imagenet"],
        "extract_ms_per_image": [50.0],
        "classify_ms_per_image": [3.0],
    }
)


def test_labels_match_the_study_naming():
    assert units_label([512, 256]) == "(512, 256)"
    assert units_label("512-256") == "(512, 256)"
    assert units_label("(64,)") == "(64)"
    assert classifier_label("LinearSVC") == "svm_linear"
    assert classifier_label("svc_rbf") == "svm_rbf"
    assert classifier_label("MLPClassifier") == "mlp"


def test_comparison_aligns_run_and_study_and_keeps_missing_pipelines():
    table = compare_with_study(HANDCRAFTED, None, TRANSFER, PAPER)
    key = ["pipeline", "model", "variant", "metric", "split"]
    indexed = table.set_index(key)
    best = indexed.loc[("handcrafted", "mlp", "(512, 256)", "accuracy", "test")]
    assert best["this_run"] == 0.52 and best["study"] == 0.495
    # a configuration the study did not have: no study value
    assert pd.isna(indexed.loc[("handcrafted", "mlp", "(32)", "accuracy", "test"), "study"])
    # the cnn pipeline did not run: the study's row is there with no value of this run
    cnn = indexed.loc[("cnn", "kostrzewa", "plain", "accuracy", "test")]
    assert pd.isna(cnn["this_run"]) and cnn["study"] == 0.3975
    resnet = indexed.loc[
        ("transfer", "resnet50 conv5_block1_2_relu pca0.90", "svm_rbf", "accuracy", "test")
    ]
    assert resnet["this_run"] == 0.51 and resnet["study"] == 0.5012
    assert resnet["weights"] == "imagenet"


def test_reporting_pipeline_writes_summary_with_missing_sections(tmp_path: Path):
    HANDCRAFTED.to_csv(tmp_path / "handcrafted.csv", index=False)
    tracks = pd.DataFrame(
        {
            "track_id": ["1", "2", "3"],
            "genre": ["Rock", "Pop", "Rock"],
            "split": ["training", "validation", "test"],
        }
    )
    catalog = DataCatalog(
        {
            "handcrafted_results": OptionalCSVDataset(filepath=str(tmp_path / "handcrafted.csv")),
            "cnn_results": OptionalCSVDataset(filepath=str(tmp_path / "absent_cnn.csv")),
            "transfer_results": OptionalCSVDataset(filepath=str(tmp_path / "absent.csv")),
            "paper_results": MemoryDataset(PAPER),
            "tracks": MemoryDataset(tracks),
            "bad_tracks": MemoryDataset(pd.DataFrame({"track_id": ["9"]})),
            "params:ingestion": MemoryDataset(
                {"source": "fma", "fma_root": "data/01_raw/demo", "subset": "small"}
            ),
            "params:reporting": MemoryDataset({"dataset_kind": "demo"}),
            # through a real CSV, as in the project catalog (empty cells come back as NaN)
            "results_comparison": CSVDataset(
                filepath=str(tmp_path / "comparison.csv"), save_args={"index": False}
            ),
            "run_data_description": MemoryDataset(),
            "summary_report": MemoryDataset(),
            "summary_chart": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    summary = catalog.load("summary_report")
    assert "demo — data/01_raw/demo (subset small); 3 tracks in 2 genres" in summary
    assert "not from FMA-small" in summary
    assert "| mlp | (512, 256) | trained | 0.5200 | 0.4950 |" in summary
    cnn_section = summary.split("## CNN")[1].split("##")[0]
    assert "missing: this pipeline has produced no results yet" in cnn_section
    chart = catalog.load("summary_chart")
    assert [trace.name for trace in chart.data] == ["this run", "study"]


@pytest.mark.parametrize("exists", [True, False])
def test_optional_csv_returns_none_only_when_absent(tmp_path: Path, exists: bool):
    path = tmp_path / "r.csv"
    if exists:
        pd.DataFrame({"a": [1]}).to_csv(path, index=False)
    loaded = OptionalCSVDataset(filepath=str(path)).load()
    assert (loaded is not None) == exists
