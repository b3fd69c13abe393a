"""CNN variants as parameters (#22): ``cnn.variants`` alone decides the nodes (one namespaced
pipeline per entry), the catalog entries (dataset factories), the results rows, the comparison
with the study and the MLflow runs."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from types import SimpleNamespace

import keras
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from music_genre.config import ParameterError, ParameterValidationHook, validate_section
from music_genre.config import validation as parameters
from music_genre.models.cnn import trainable_parameters
from music_genre.pipelines.cnn import create_pipeline
from tests.pipelines.cnn.test_cnn import AUGMENTATION, STUDY_VARIANTS, _params, data  # noqa: F401

ROOT = Path(__file__).resolve().parents[3]
# A fifth variant: one parameters entry, with its own network and epoch budget.
SMALL = {
    "augmented": True,
    "report_model": "small",
    "architecture": {"filters": [4, 4, 8, 8], "kernel_size": 3, "dropout": 0.25},
    "training": {"epochs": 2},
}
OUTPUTS = ["cnn_model", "cnn_training_log", "cnn_evaluation"]
OUTPUTS += ["cnn_confusion_matrix", "cnn_learning_curves"]


def _conf(name: str, env: str = "base") -> dict:
    from music_genre import settings

    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(ROOT / "conf"), env=env, **settings.CONFIG_LOADER_ARGS
    )
    return loader[name]


def test_conf_holds_the_studys_four_variants_at_their_earlier_paths(monkeypatch):
    monkeypatch.setattr(parameters, "_CONTEXT_PARAMETERS", {})  # no Kedro context: conf/
    monkeypatch.chdir(ROOT)
    for env in ("base", "demo"):
        assert _conf("parameters", env)["cnn"]["variants"] == STUDY_VARIANTS
    pipeline = create_pipeline()
    assert [n.name for n in pipeline.nodes if n.name.startswith("tuned_cnn.")] == [
        "tuned_cnn.tune",
        "tuned_cnn.train",
        "tuned_cnn.evaluate",
    ]
    catalog = DataCatalog.from_config(_conf("catalog"))
    # the files of the runs before #22 (stores, Hyperband state and MLflow history line up)
    earlier = {
        "cnn_model": "data/06_models/cnn/{v}.keras",
        "cnn_training_log": "data/06_models/cnn/{v}_training_log.json",
        "cnn_best_hyperparameters": "data/06_models/cnn/{v}_best_hyperparameters.json",
        "cnn_evaluation": "data/07_model_output/cnn/{v}_evaluation.json",
        "cnn_confusion_matrix": "data/08_reporting/cnn/{v}_confusion_matrix.png",
        "cnn_learning_curves": "data/08_reporting/cnn/{v}_learning_curves.png",
    }
    produced = pipeline.all_outputs()
    for variant, spec in STUDY_VARIANTS.items():
        for kind, path in earlier.items():
            name = f"{variant}.{kind}"
            if kind == "cnn_best_hyperparameters" and not spec["tuned"]:
                assert name not in produced
                continue
            assert name in produced
            assert str(catalog.get(name)._filepath).endswith(path.format(v=variant)), name


def test_the_running_contexts_parameters_decide_the_variants(monkeypatch):
    monkeypatch.setattr(parameters, "_CONTEXT_PARAMETERS", {})
    conf = copy.deepcopy(_conf("parameters", "demo"))
    conf["cnn"]["variants"]["augmented_small"] = SMALL
    ParameterValidationHook().after_context_created(
        SimpleNamespace(config_loader={"parameters": conf})
    )
    pipeline = create_pipeline()
    names = {n.name for n in pipeline.nodes}
    assert {"augmented_small.train", "augmented_small.evaluate"} <= names
    assert "augmented_small.tune" not in names  # untuned: no Hyperband
    report = next(n for n in pipeline.nodes if n.name == "report_cnn_results")
    assert report.inputs[4] == "augmented_small.cnn_evaluation"  # after the study's four
    assert report.inputs[-1] == "augmented_small.cnn_model"


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ({}, "cnn.variants: Dictionary should have at least 1 item"),
        ({"Bad.Name": {}}, "cnn.variants.Bad.Name='Bad.Name': String should match pattern"),
        (
            {"tuned_small": {"tuned": True, "architecture": SMALL["architecture"]}},
            "a tuned variant takes its architecture from Hyperband",
        ),
        ({"x": {"training": {"epoch": 1}}}, "cnn.variants.x.training.epoch=1: unknown key"),
    ],
)
def test_variant_entries_are_validated(tmp_path: Path, variants: dict, message: str):
    with pytest.raises(ParameterError, match=re.escape(message)):
        validate_section("cnn", {**_params(tmp_path), "variants": variants})


def test_a_variant_changes_only_its_own_settings(tmp_path: Path):
    settings = validate_section("cnn", {**_params(tmp_path), "variants": {"small": SMALL}})
    small = settings.for_variant("small")
    assert small.architecture.filters == [4, 4, 8, 8] and small.training.epochs == 2
    assert small.training.batch_size == settings.training.batch_size  # not overridden
    assert settings.training.epochs == 1 and settings.architecture.filters == [8, 8, 16, 16]
    with pytest.raises(ValueError, match="Unknown CNN variant 'other'"):
        settings.for_variant("other")


@pytest.mark.slow
def test_a_fifth_variant_is_one_parameters_entry(
    data: dict,  # noqa: F811
    tmp_path: Path,
    monkeypatch,
    mlflow_store,
):
    """The pipeline built from parameters with a fifth entry trains it, writes its files
    through the catalog's dataset factories, reports its row and logs its MLflow run."""
    from music_genre.pipelines.reporting.nodes import compare_with_study

    params = _params(tmp_path)
    params["variants"]["augmented_small"] = SMALL
    pipeline = create_pipeline(params["variants"])
    monkeypatch.chdir(tmp_path)  # the catalog's relative paths land here
    catalog = DataCatalog.from_config(_conf("catalog"))
    catalog["tracks"] = MemoryDataset(data["tracks"])
    catalog["log_mel_spectrograms"] = MemoryDataset(data["log_mel"], copy_mode="assign")
    catalog["augmented_spectrograms"] = MemoryDataset(data["augmented"], copy_mode="assign")
    catalog["params:cnn"] = MemoryDataset(params)
    catalog["params:augmentation"] = MemoryDataset(AUGMENTATION)

    SequentialRunner().run(pipeline, catalog)
    runs = mlflow_store.search_runs(filter_string="tags.variant = 'augmented_small'")

    # its model and logs, at the factories' paths
    assert (tmp_path / "data/06_models/cnn/augmented_small.keras").is_file()
    model = catalog.load("augmented_small.cnn_model")
    assert isinstance(model, keras.Model)
    assert trainable_parameters(model) < trainable_parameters(catalog.load("cnn.cnn_model"))
    log = catalog.load("augmented_small.cnn_training_log")
    assert log["architecture"]["filters"] == [4, 4, 8, 8] and log["max_epochs"] == 2
    assert log["epochs_trained"] == 2 and log["training_items"] == 36  # with the masked copies
    assert catalog.load("cnn.cnn_training_log")["max_epochs"] == 1  # the others: cnn.training
    for kind in OUTPUTS[2:]:
        assert catalog.exists(f"augmented_small.{kind}")
    # its row in the results table, after the study's four, and in the comparison
    results = pd.read_csv(tmp_path / "data/08_reporting/cnn_results.csv")
    assert results["variant"].tolist() == [*STUDY_VARIANTS, "augmented_small"]
    row = results.set_index("variant").loc["augmented_small"]
    assert row["params"] == trainable_parameters(model) and 0 <= row["test_accuracy"] <= 1
    paper = pd.DataFrame(columns=["pipeline", "model", "variant", "metric", "split", "value"])
    comparison = compare_with_study(None, results, None, paper, None, params)
    ours = comparison[(comparison["model"] == "small") & (comparison["split"] == "test")]
    assert ours["variant"].unique().tolist() == ["augmented"]
    assert ours.loc[ours["metric"] == "accuracy", "this_run"].item() == row["test_accuracy"]
    study = comparison[(comparison["model"] == "tuned") & (comparison["variant"] == "plain")]
    assert len(study) > 0  # the study's variants keep their names from cnn.variants
    # its MLflow run
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["tags.mlflow.runName"] == "cnn: augmented_small"
    assert run["params.variant"] == "augmented_small" and run["params.filters"] == "4/4/8/8"
    assert run["metrics.test_accuracy"] == pytest.approx(row["test_accuracy"])
    index = pd.read_csv(tmp_path / "data/08_reporting/cnn_mlflow_runs.csv")
    assert run["run_id"] in index["run_id"].tolist() and len(index) == 5
