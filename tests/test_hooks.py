"""The end-of-run summary picks each pipeline's best model on validation, not on test."""

from pathlib import Path

import pandas as pd
import pytest

from music_genre.hooks import best_models


def test_best_model_is_chosen_on_validation_and_reports_its_test_accuracy():
    handcrafted = pd.DataFrame(
        {"units": ["(512)", "(64)"], "val_accuracy": [0.50, 0.60], "test_accuracy": [0.70, 0.40]}
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


def test_a_validation_tie_goes_to_the_lower_validation_loss_not_the_first_row():
    """#23: on the demo every MLP reached val 0.8125; (512) has the lowest validation loss and
    is the saved model, so the summary names it, not (512, 512) which merely comes first."""
    handcrafted = pd.DataFrame(
        {
            "units": ["(512, 512)", "(512)", "(64)"],
            "parameters": [400_000, 150_000, 20_000],
            "val_loss": [1.09, 0.94, 0.99],
            "val_accuracy": [0.8125, 0.8125, 0.8125],
            "test_accuracy": [0.625, 0.625, 0.625],
        }
    )
    table = best_models({"handcrafted_results": handcrafted})
    assert table.loc[0, "best model"] == "(512)"
    assert table.loc[0, "selected on"] == "val_accuracy 0.8125"
    # tied on the loss as well: fewer parameters
    table = best_models({"handcrafted_results": handcrafted.assign(val_loss=0.94)})
    assert table.loc[0, "best model"] == "(64)"


# -- a run whose inputs do not exist yet says what to run first ---------------------------------
@pytest.mark.slow
def test_missing_inputs_name_their_producers_and_the_command(tmp_path):
    from kedro.io import DataCatalog, MemoryDataset

    from music_genre.datasets import (
        AtomicParquetDataset,
        OptionalCSVDataset,
        SpectrogramStoreDataset,
    )
    from music_genre.hooks import all_pipelines, missing_inputs_message

    registered = all_pipelines()
    assert {"ingestion", "spectrogram", "transfer", "cnn", "reporting"} <= set(registered)
    catalog = DataCatalog(
        {
            "tracks": AtomicParquetDataset(filepath=str(tmp_path / "tracks.parquet")),
            "log_mel_spectrograms": SpectrogramStoreDataset(str(tmp_path / "spectrograms")),
            "params:transfer": MemoryDataset({}),
        }
    )
    message = missing_inputs_message(registered["transfer"], catalog, registered, "demo")
    assert "tracks (" in message and "made by the `ingestion` pipeline" in message
    assert "log_mel_spectrograms" in message and "`spectrogram` pipeline" in message
    assert "kedro run --env demo --pipelines=ingestion,spectrogram" in message

    # Once the track table exists, only the spectrograms are missing.
    pd.DataFrame({"track_id": ["1"]}).to_parquet(tmp_path / "tracks.parquet")
    message = missing_inputs_message(registered["transfer"], catalog, registered, None)
    assert "kedro run --pipelines=spectrogram\n" in message + "\n"

    # Results that may legitimately be absent (a pipeline not run yet) do not stop a run.
    reporting_catalog = DataCatalog(
        {
            name: OptionalCSVDataset(filepath=str(tmp_path / f"{name}.csv"))
            for name in ("handcrafted_results", "cnn_results", "transfer_results")
        }
    )
    only_results = registered["reporting"].only_nodes("compare_with_study")
    assert missing_inputs_message(only_results, reporting_catalog, registered, None) is None


@pytest.mark.slow
def test_kedro_run_without_inputs_says_what_to_run_without_a_traceback(tmp_path):
    """The command users start with, on a fresh clone: `kedro run --pipeline=transfer`."""
    import shutil
    import sys
    from pathlib import Path

    from tests.helpers.processes import run_command

    root = Path(__file__).resolve().parents[1]
    project = tmp_path / "clone"
    project.mkdir()
    shutil.copy(root / "pyproject.toml", project)
    shutil.copytree(root / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    # no data/ at all, as in a fresh clone
    shutil.copytree(root / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    result = run_command(
        [sys.executable, "-m", "kedro", "run", "--pipelines=transfer"],
        cwd=project,
        timeout=300,
        env={**__import__("os").environ, "KEDRO_DISABLE_TELEMETRY": "1"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "kedro run --pipelines=ingestion,spectrogram" in output
    assert "make fma-small" in output
    assert "Traceback" not in output
    assert not (project / "data").exists() or not any((project / "data").rglob("*.parquet"))


def test_the_run_summary_times_every_node_and_ranks_the_slowest(monkeypatch):
    from types import SimpleNamespace

    import music_genre.hooks.summary as hooks
    from music_genre.hooks import RunSummaryHook, slowest_nodes

    clock = iter([0.0, 2.0, 2.0, 5.0, 9.0])  # ingest starts, ends; train starts, ends; saved
    monkeypatch.setattr(hooks.time, "perf_counter", lambda: next(clock))
    hook = RunSummaryHook()
    hook.before_pipeline_run()
    for name in ("ingest", "train"):
        hook.before_node_run(SimpleNamespace(name=name))
        hook.after_node_run(SimpleNamespace(name=name))
    assert hook.durations == {"ingest": 2.0, "train": 3.0}
    # a generator node's work happens while its batches are saved, after after_node_run
    hook.after_dataset_saved("batches", None, SimpleNamespace(name="ingest"))
    assert hook.durations == {"ingest": 9.0, "train": 3.0}

    table = slowest_nodes({"a": 1.0, "b": 6.0, "c": 3.0}, limit=2)
    assert table["node"].tolist() == ["b", "c"]
    assert table["share"].tolist() == ["60%", "30%"]


def test_a_setup_error_ends_the_run_with_its_message_after_the_other_hooks():
    """E.g. ImageNet weights that cannot be had offline: the message names the fix, so
    ``kedro run`` shows it alone; other hooks (MLflow closing its run) still see the error."""
    import click
    import pytest
    from kedro.framework.hooks import _create_hook_manager, hook_impl

    from music_genre.hooks import SetupErrorHook
    from music_genre.models.backbones import BackboneWeightsError

    seen: list[str] = []

    class ClosesItsRun:  # registered first: pluggy calls it last unless a hook says trylast
        @hook_impl
        def on_pipeline_error(self, error: Exception) -> None:
            seen.append(type(error).__name__)

    manager = _create_hook_manager()
    manager.register(ClosesItsRun())
    manager.register(SetupErrorHook())
    call = {"run_params": {}, "pipeline": None, "catalog": None}
    with pytest.raises(click.ClickException) as info:
        manager.hook.on_pipeline_error(error=BackboneWeightsError("put the file at X"), **call)
    assert info.value.message == "put the file at X" and seen == ["BackboneWeightsError"]
    # any other error keeps its traceback: the hook lets it through
    manager.hook.on_pipeline_error(error=KeyError("bug"), **call)
    assert seen[-1] == "KeyError"


def test_a_track_table_of_another_collection_is_refused_before_any_work(tmp_path):
    """`make run` (the demo), then `kedro run --pipeline=transfer` without `--env demo`: the
    demo's track table must not be read as the configured collection's."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import node, pipeline

    from music_genre.datasets import AudioCollectionDataset
    from music_genre.hooks import foreign_tracks_message

    demo_track = str(tmp_path / "raw" / "demo" / "fma_small" / "000" / "000002.mp3")
    uses_tracks = pipeline([node(len, "tracks", "n_tracks", name="count")])

    def catalog(fma_root: Path) -> DataCatalog:
        return DataCatalog(
            {
                "tracks": MemoryDataset(pd.DataFrame({"path": [demo_track]})),
                "raw_audio_collection": AudioCollectionDataset(fma_root=str(fma_root)),
            }
        )

    message = foreign_tracks_message(uses_tracks, catalog(tmp_path / "raw"), None)
    assert message and demo_track in message and "--env demo" in message
    assert foreign_tracks_message(uses_tracks, catalog(tmp_path / "raw" / "demo"), "demo") is None
    # a run that makes its own track table is not concerned
    makes_tracks = pipeline([node(lambda: None, None, "tracks", name="ingest"), uses_tracks])
    assert foreign_tracks_message(makes_tracks, catalog(tmp_path / "raw"), None) is None
