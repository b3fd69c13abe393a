"""Reporting: study rows line up with this run's rows; missing pipelines read as missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
        "train_accuracy": [0.8, 0.7, 0.6],
        "val_accuracy": [0.6, 0.55, 0.5],
        "test_accuracy": [0.52, 0.47, 0.4],
        "test_ci_low": [0.4232, 0.3751, 0.3094],
        "test_ci_high": [0.6154, 0.5671, 0.4980],
        "test_tracks": [100, 100, 100],
    }
)


def _predictions(track_ids, n_right: int) -> pd.DataFrame:
    """Two classes; the first ``n_right`` tracks predicted right, the others wrong."""
    ids = [str(t) for t in track_ids]
    labels = [i % 2 for i in range(len(ids))]
    predicted = [label if i < n_right else 1 - label for i, label in enumerate(labels)]
    return pd.DataFrame(
        {"track_id": ids, "label": labels, "predicted": predicted, "prob_a": 0.5, "prob_b": 0.5}
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


def test_cnn_rows_are_named_from_the_cnn_variants_parameters():
    """cnn.variants names each CNN row (report_model; augmented or plain): a variant added
    there is reported without a table in the reporting code."""
    metrics = {f"{p}_{m}": 0.5 for p in ("train", "val", "test") for m in ("accuracy", "loss")} | {
        "inference_seconds": 0.01
    }
    results = pd.DataFrame(
        [{"variant": v, **metrics} for v in ("cnn", "augmented_small", "dropped_since")]
    )
    cnn = {
        "variants": {
            "cnn": {"augmented": False, "tuned": False, "report_model": "kostrzewa"},
            "augmented_small": {"augmented": True},
        }
    }
    table = compare_with_study(None, results, None, PAPER, None, cnn)
    rows = table[(table["pipeline"] == "cnn") & (table["metric"] == "accuracy")]
    named = set(zip(rows["model"], rows["variant"], strict=True))
    assert named == {
        ("kostrzewa", "plain"),
        ("augmented_small", "augmented"),
        ("dropped_since", "plain"),  # no longer in cnn.variants: its own name
    }
    study = rows[(rows["model"] == "kostrzewa") & (rows["split"] == "test")].iloc[0]
    assert study["study"] == 0.3975 and study["this_run"] == 0.5


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
            "fusion_results": OptionalCSVDataset(filepath=str(tmp_path / "absent_fusion.csv")),
            "handcrafted_test_predictions": MemoryDataset(_predictions(range(40), 30)),
            "cnn_test_predictions": MemoryDataset(_predictions(range(40), 20)),
            "transfer_test_predictions": MemoryDataset(None),
            "fusion_test_predictions": MemoryDataset(None),
            "best_models": MemoryDataset(),
            "paired_tests": CSVDataset(
                filepath=str(tmp_path / "paired.csv"), save_args={"index": False}
            ),
            "paper_results": MemoryDataset(PAPER),
            "tracks": MemoryDataset(tracks),
            "bad_tracks": MemoryDataset(pd.DataFrame({"track_id": ["9"]})),
            "params:ingestion": MemoryDataset(
                {"source": "fma", "fma_root": "data/01_raw/demo", "subset": "small"}
            ),
            "params:reporting": MemoryDataset({"dataset_kind": "demo"}),
            "params:cnn": MemoryDataset({"variants": {"cnn": {"report_model": "kostrzewa"}}}),
            "params:handcrafted": MemoryDataset(
                {"source": "extract", "extraction": {"duration_s": None}}
            ),
            "params:spectrogram": MemoryDataset(
                {"duration_s": 29.7, "sample_rate": 22050, "pad_mode": "repeat"}
            ),
            "params:transfer": MemoryDataset(
                {"experiments": [{"backbone": "musicnn"}], "audio": {"duration_s": 29.7}}
            ),
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
    assert "- **Split**: FMA's official split." in summary
    # 0.52 of 100 test tracks: Wilson 95 % interval [0.4232, 0.6154]
    assert "| mlp | (512, 256) | trained | 0.5200 [0.4232, 0.6154] | 0.4950 |" in summary
    assert (
        "| handcrafted | (512, 256) (val_accuracy 0.6000) | 0.5200 [0.4232, 0.6154] | 0.4950 "
        "| no: within the interval |" in summary
    )
    # paired test on the 40 common tracks: 10 right only by handcrafted, none only by cnn
    paired = catalog.load("paired_tests")
    assert paired[
        ["model_a", "model_b", "n_tracks", "only_a_right", "only_b_right"]
    ].values.tolist() == [["handcrafted", "cnn", 40, 10, 0]]
    assert paired.loc[0, "p_value"] == pytest.approx(2 * 0.5**10)
    assert (
        "| handcrafted | cnn | 40 | 0.7500 | 0.5000 | 10 | 0 | 0.00195 | handcrafted better |"
        in summary
    )
    # per pipeline, what audio its models saw (the results table of an older run has no
    # audio column: the parameters say it), and the study's handcrafted rows saw whole tracks
    audio = summary.split("## What audio each pipeline's models were trained on")[1]
    audio = audio.split("##")[0]
    assert "- **handcrafted**: extract: 518 features extracted from each whole file" in audio
    assert "- **cnn**: log-mel spectrogram of the first 29.70 s of each file" in audio
    assert "musicnn: its own front end on the first 29.70 s" in audio
    assert "full-length tracks" in summary.split("## Handcrafted")[1].split("##")[0]
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


def test_wilson_interval_and_exact_mcnemar_match_known_values():
    from music_genre.models.evaluation import accuracy_interval, mcnemar_exact, wilson_interval

    # Wilson 95 %: 8 of 10 -> [0.4902, 0.9433] (Newcombe 1998, Table I style values)
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert accuracy_interval(0.8, 10) == (low, high)
    assert all(np.isnan(accuracy_interval(0.5, 0)))
    # stays inside [0, 1] at the edges, unlike the normal approximation
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    a = [True] * 6 + [False] * 4
    b = [False] * 5 + [True] * 5
    test = mcnemar_exact(a, b)  # only a: items 0-4 (5), only b: items 6-9 (4)
    assert (test["only_a"], test["only_b"]) == (5, 4)
    assert test["p_value"] == pytest.approx(1.0)
    assert mcnemar_exact([True, True], [True, True])["p_value"] == 1.0
    assert mcnemar_exact([True] * 8, [False] * 8)["p_value"] == pytest.approx(2 / 2**8)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, "seeded stratified 80/10/10 split"),
        ({"group_by": "artist"}, "seeded 80/10/10 split keeping every artist on one side"),
        ({"split_file": "split.csv", "group_by": "artist"}, "the published split file split.csv"),
    ],
)
def test_summary_data_says_how_a_folder_collection_was_split(extra, expected):
    from music_genre.pipelines.reporting.nodes import describe_data

    tracks = pd.DataFrame({"genre": ["a", "b"], "split": ["training", "test"]})
    ingestion = {
        "source": "folder",
        "folder": "/music",
        **extra,
        "split_fractions": {"training": 0.8, "validation": 0.1, "test": 0.1},
    }
    data = describe_data(tracks, pd.DataFrame(), ingestion, {"dataset_kind": "x"})
    assert data["split_method"].startswith(expected)


def test_summary_keeps_whole_track_and_clip_handcrafted_rows_apart():
    """handcrafted.source=[fma_csv, extract]: one row per source, each saying what its
    features were computed over; the best model is the saved (first) source's, even when a
    comparison row has the higher validation accuracy."""
    from music_genre.pipelines.reporting.nodes import best_model_table
    from music_genre.pipelines.reporting.summary import render_summary

    whole = HANDCRAFTED.iloc[:1].assign(
        source="fma_csv",
        audio="whole track (features.csv)",
        training_audio="FMA's features.csv: ... full-length tracks",
        comparison=False,
    )
    clips = HANDCRAFTED.iloc[:1].assign(
        val_accuracy=0.9,
        test_accuracy=0.3,
        source="extract",
        audio="whole file (~30.0 s)",
        training_audio="518 features extracted from each whole file",
        comparison=True,
    )
    results = pd.concat([whole, clips], ignore_index=True)
    comparison = compare_with_study(results, None, None, PAPER)
    rows = comparison[
        (comparison["pipeline"] == "handcrafted")
        & (comparison["variant"] == "(512, 256)")
        & (comparison["split"] == "test")
        & (comparison["metric"] == "accuracy")
    ]
    assert sorted(rows["audio"]) == [
        "whole file (~30.0 s); comparison row (model not saved)",
        "whole track (features.csv)",
    ]
    assert rows["this_run"].tolist() == [0.3, 0.52] or rows["this_run"].tolist() == [0.52, 0.3]
    best = best_model_table(results, None, None, None, PAPER)
    assert best.loc[0, "model"] == "(512, 256) fma_csv" and best.loc[0, "test_accuracy"] == 0.52
    data = {
        "kind": "FMA",
        "location": "x",
        "tracks": 3,
        "genres": 2,
        "splits": {"test": 1},
        "bad_tracks": 0,
        "training_audio": {"handcrafted": "fma_csv: whole tracks; extract: clips"},
    }
    summary = render_summary(comparison, data, best)
    section = summary.split("## Handcrafted")[1].split("##")[0]
    assert "| features computed over |" in section
    assert "| mlp | (512, 256) | trained | whole track (features.csv) | 0.5200" in section
    assert (
        "| mlp | (512, 256) | trained | whole file (~30.0 s); comparison row (model not saved) "
        "| 0.3000" in section
    )
    assert "- **handcrafted**: fma_csv: whole tracks; extract: clips" in summary


def test_best_model_table_breaks_a_validation_tie_by_loss_then_parameters_then_order():
    """#23: best_models.csv names the configuration the handcrafted node saves (the rule of
    music_genre.models.selection), not the first row of a tie."""
    from music_genre.pipelines.reporting.nodes import best_model_table

    tied = HANDCRAFTED.assign(val_accuracy=0.8125, val_loss=[1.09, 0.94, 0.99])
    assert best_model_table(tied, None, None, None, PAPER).loc[0, "model"] == "(64)"
    tied = tied.assign(val_loss=0.94)  # and on the loss: fewer parameters
    assert best_model_table(tied, None, None, None, PAPER).loc[0, "model"] == "(32)"
    tied = tied.assign(parameters=1)  # and on everything: table order
    assert best_model_table(tied, None, None, None, PAPER).loc[0, "model"] == "(512, 256)"
