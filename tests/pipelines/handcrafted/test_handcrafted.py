"""Handcrafted pipeline: FMA's feature layout, robust extraction, training-only scaling, the sweep.

Everything runs on tiny generated audio (1-2 s clips) and a two-configuration sweep of a few
epochs, so the file stays fast on two cores.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner
from scipy import stats

from music_genre.audio.features import (
    FMA_SETTINGS,
    compute_features,
    feature_columns,
    summary_statistics,
)
from music_genre.datasets import (
    FeatureRowsDataset,
    FeatureRowsIndexDataset,
    FmaFeaturesDataset,
    KerasModelDataset,
)
from music_genre.pipelines.handcrafted import create_pipeline
from music_genre.pipelines.handcrafted.mlp import RESULT_COLUMNS, build_mlp
from music_genre.pipelines.handcrafted.nodes import (
    build_feature_table,
    extract_handcrafted_features,
    standardize_features,
)

SR = 22050
EXTRACTION = {**FMA_SETTINGS, "workers": 1, "save_every": 4}
PARAMS = {
    "source": "extract",
    "extraction": EXTRACTION,
    "mlp": {
        "hidden_units": [[16, 8], [8]],
        "learning_rate": 1e-3,
        "batch_size": 4,
        "max_epochs": 4,
        "patience": 2,
        "l2": 0.02,
        "seed": 7,
    },
}
# The study's Table 1: hidden units -> trainable parameters (518 inputs, 8 genres).
TABLE_1_PARAMETERS = {
    (512, 512): 532_488,
    (512, 256): 399_112,
    (256, 256): 200_712,
    (256, 64): 149_832,
    (128, 64): 75_208,
    (64,): 33_736,
    (128,): 67_464,
    (256,): 134_920,
    (512,): 269_832,
}


def _write(path: Path, signal: np.ndarray, sample_rate: int = SR) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal.astype(np.float32), sample_rate)
    return str(path)


def _clip(genre: int, index: int, seconds: float = 1.5) -> np.ndarray:
    """Genre 0: low tones; genre 1: bright noise bursts (easy to tell apart)."""
    rng = np.random.default_rng(100 * genre + index)
    t = np.arange(int(seconds * SR)) / SR
    if genre == 0:
        return 0.3 * np.sin(2 * np.pi * (110 + 20 * index) * t)
    return 0.2 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 4 * t) > 0)


def _tracks(root: Path, per_split=(4, 1, 1)) -> pd.DataFrame:
    rows = []
    for genre, name in enumerate(("Folk", "Rock")):
        n_train, n_val, test_count = per_split
        splits = ["training"] * n_train + ["validation"] * n_val + ["test"] * test_count
        for index, split in enumerate(splits):
            track_id = f"{900000 + 100 * genre + index:06d}"
            path = _write(root / f"{track_id}.wav", _clip(genre, index))
            rows.append(
                {
                    "track_id": track_id,
                    "path": path,
                    "genre": name,
                    "label": genre,
                    "split": split,
                    "duration_s": 1.5,
                    "sample_rate": SR,
                    "channels": 1,
                }
            )
    return pd.DataFrame(rows)


def _run(catalog_entries: dict, tracks: pd.DataFrame, params: dict) -> DataCatalog:
    catalog = DataCatalog(
        {
            "tracks": MemoryDataset(tracks),
            "params:handcrafted": MemoryDataset(params),
            "params:handcrafted.mlp": MemoryDataset(params["mlp"]),
            **catalog_entries,
            **{
                name: MemoryDataset()
                for name in (
                    "handcrafted_features",
                    "bad_tracks_handcrafted",
                    "handcrafted_model_input",
                    "handcrafted_scaler",
                    "handcrafted_results",
                    "handcrafted_confusion_matrix",
                    "handcrafted_validation_predictions",
                    "handcrafted_test_predictions",
                    "handcrafted_model_info",
                )
            },
            # run records hold Keras models: hand them over as they are, not deep-copied
            "handcrafted_mlflow_runs": MemoryDataset(copy_mode="assign"),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


def _store(tmp_path: Path) -> dict:
    folder = str(tmp_path / "rows")
    return {
        # Real stores where a later node re-reads them (the runner frees memory datasets).
        "handcrafted_mlp": KerasModelDataset(str(tmp_path / "models" / "handcrafted_mlp.keras")),
        "handcrafted_feature_row_index": FeatureRowsIndexDataset(folder),
        "handcrafted_feature_rows": FeatureRowsDataset(folder),
        "fma_features": FmaFeaturesDataset(str(tmp_path / "absent" / "features.csv")),
    }


# --- FMA's layout ----------------------------------------------------------------------------


def test_columns_equal_fma_features_csv_layout():
    # Built from the layout's description, independently of music_genre.audio.features.
    sizes = [
        ("chroma_cens", 12),
        ("chroma_cqt", 12),
        ("chroma_stft", 12),
        ("mfcc", 20),
        ("rmse", 1),
        ("spectral_bandwidth", 1),
        ("spectral_centroid", 1),
        ("spectral_contrast", 7),
        ("spectral_rolloff", 1),
        ("tonnetz", 6),
        ("zcr", 1),
    ]
    stats_order = ["kurtosis", "max", "mean", "median", "min", "skew", "std"]
    expected = [
        (f, s, f"{n:02d}") for f, size in sizes for s in stats_order for n in range(1, size + 1)
    ]
    columns = feature_columns()
    assert len(columns) == 518
    assert list(columns) == expected
    assert list(columns.names) == ["feature", "statistics", "number"]
    assert columns[0] == ("chroma_cens", "kurtosis", "01")
    assert columns[12] == ("chroma_cens", "max", "01")
    assert columns[-1] == ("zcr", "std", "01")


def _fma_csv(path: Path, rows: dict[int, list[float]], columns=None) -> Path:
    """A features.csv in FMA's text format: three header rows, then the track_id row."""
    columns = list(feature_columns()) if columns is None else columns
    lines = [
        ",".join([level] + [c[i] for c in columns])
        for i, level in enumerate(("feature", "statistics", "number"))
    ]
    lines.append("track_id" + "," * len(columns))
    lines += [",".join([str(tid)] + [repr(v) for v in values]) for tid, values in rows.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fma_features_csv_reads_lazily_and_checks_layout(tmp_path: Path):
    ones = [1.0] * 518
    csv = _fma_csv(
        tmp_path / "fma_metadata" / "features.csv",
        {2: ones, 5: [2.0] * 518, 140: [float("nan")] + ones[1:]},
    )
    table = FmaFeaturesDataset(str(csv)).load().read(["000005", "000140"])
    assert list(table.index) == ["000005", "000140"]
    assert table.columns.equals(feature_columns())
    assert table.dtypes.unique().tolist() == [np.float32]

    # Loading never touches the file; only read() of an absent file fails, saying what to do.
    handle = FmaFeaturesDataset(str(tmp_path / "nowhere.csv")).load()
    with pytest.raises(DatasetError, match="handcrafted.source=extract"):
        handle.read()
    reordered = _fma_csv(tmp_path / "bad.csv", {2: ones}, list(reversed(feature_columns())))
    with pytest.raises(DatasetError, match="columns differ"):
        FmaFeaturesDataset(str(reordered)).load().read()


def test_fma_csv_source_reports_missing_and_nan_rows(tmp_path: Path):
    tracks = pd.DataFrame(
        {
            "track_id": ["000002", "000005", "000140"],
            "path": ["a", "b", "c"],
            "genre": ["Rock"] * 3,
            "split": ["training"] * 3,
        }
    )
    ones = [1.0] * 518
    csv = _fma_csv(tmp_path / "features.csv", {2: ones, 140: [float("nan")] + ones[1:]})
    table, bad = build_feature_table(
        tracks, {}, FmaFeaturesDataset(str(csv)).load(), {**PARAMS, "source": "fma_csv"}
    )
    assert list(table.index) == ["000002"]
    assert dict(zip(bad["track_id"], bad["stage"], strict=True)) == {
        "000005": "handcrafted_features",
        "000140": "handcrafted_features",
    }
    reasons = dict(zip(bad["track_id"], bad["reason"], strict=True))
    assert "not in FMA's" in reasons["000005"]
    assert "non-finite" in reasons["000140"] and "chroma_cens.kurtosis" in reasons["000140"]


# --- extraction ------------------------------------------------------------------------------


@pytest.mark.numeric
def test_statistics_match_scipy_and_stay_finite_without_variance():
    rng = np.random.default_rng(0)
    frames = np.vstack([rng.gamma(2.0, size=300), np.full(300, 0.5), rng.normal(size=300)])
    got = summary_statistics(frames)
    np.testing.assert_allclose(got["skew"][[0, 2]], stats.skew(frames[[0, 2]], axis=1))
    np.testing.assert_allclose(got["kurtosis"][[0, 2]], stats.kurtosis(frames[[0, 2]], axis=1))
    np.testing.assert_allclose(got["std"], np.std(frames, axis=1))
    np.testing.assert_allclose(got["median"], np.median(frames, axis=1))
    # A constant row: FMA's scipy gave skew 0 and (Fisher) kurtosis -3 instead of NaN.
    assert got["skew"][1] == 0.0 and got["kurtosis"][1] == -3.0 and got["std"][1] == 0.0


@pytest.mark.parametrize(
    ("signal", "rate"),
    [
        (np.zeros(SR), SR),  # digital silence
        (0.1 * np.random.default_rng(1).standard_normal(400), SR),  # 18 ms, shorter than n_fft
        (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000), 8000),  # below the CQT's range
    ],
    ids=["silent", "very_short", "8kHz"],
)
def test_features_are_finite_on_silent_short_and_odd_rate_audio(signal, rate):
    features = compute_features(signal, rate)
    assert features.index.equals(feature_columns())
    assert features.dtype == np.float32
    assert np.isfinite(features.to_numpy()).all()


@pytest.mark.numeric
def test_a_pure_a440_tone_gives_the_expected_features_and_fma_quirks():
    rate = 44100
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    fma = compute_features(tone, rate)
    true_rate = compute_features(tone, rate, {"fma_compatible": False})
    for features in (fma, true_rate):
        for chroma in ("chroma_cqt", "chroma_cens", "chroma_stft"):
            # pitch class A (C = 01) dominates every chroma
            assert features.loc[(chroma, "mean")].idxmax() == "10", chroma
    # FMA computed spectral features as if at 22,050 Hz: a 44.1 kHz tone's centroid halves.
    assert true_rate[("spectral_centroid", "median", "01")] == pytest.approx(440, rel=0.02)
    assert fma[("spectral_centroid", "median", "01")] == pytest.approx(220, rel=0.02)
    # librosa 0.5's rmse(S=): root mean square over the 1,025 bins of |STFT|, not the signal RMS.
    # (librosa >= 0.7 rms of Hann-windowed frames: the sine's RMS times sqrt(mean(hann^2)))
    windowed_rms = 0.3 / np.sqrt(2) * np.sqrt(3 / 8)
    assert true_rate[("rmse", "median", "01")] == pytest.approx(windowed_rms, rel=0.02)
    assert fma[("rmse", "median", "01")] > 20 * true_rate[("rmse", "median", "01")]


@pytest.mark.slow
def test_extraction_is_incremental_and_reports_failures(tmp_path: Path):
    tracks = _tracks(tmp_path / "audio", per_split=(2, 0, 0))
    broken = tmp_path / "audio" / "broken.mp3"
    broken.write_bytes(b"<html>not audio</html>")
    tracks = pd.concat([tracks, tracks.iloc[[0]].assign(track_id="900999", path=str(broken))])
    store = FeatureRowsDataset(str(tmp_path / "rows"))
    index = FeatureRowsIndexDataset(str(tmp_path / "rows"))

    for batch in extract_handcrafted_features(tracks, index.load(), PARAMS):
        store.save(batch)
    rows = store.load()
    assert set(rows) == set(tracks["track_id"])
    assert rows["900999"].failed and "broken.mp3" in rows["900999"].error
    assert all(rows[t].values.shape == (518,) for t in tracks["track_id"] if t != "900999")

    # A re-run computes only the failed track again; other settings recompute everything.
    rerun = list(extract_handcrafted_features(tracks, index.load(), PARAMS))
    assert [set(batch) for batch in rerun] == [{"900999"}]
    other = {**PARAMS, "extraction": {**EXTRACTION, "fma_compatible": False}}
    assert set().union(*extract_handcrafted_features(tracks, index.load(), other)) == set(
        tracks["track_id"]
    )

    table, bad = build_feature_table(tracks, rows, None, PARAMS)
    assert sorted(table.index) == sorted(set(tracks["track_id"]) - {"900999"})
    assert np.isfinite(table.to_numpy()).all()
    assert bad["track_id"].tolist() == ["900999"]
    assert bad["reason"].iloc[0].startswith("feature extraction failed")


@pytest.mark.slow
def test_a_track_that_crashes_its_worker_is_reported_and_the_others_are_extracted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from music_genre.infra.parallel import CRASH_KEYS_ENV

    tracks = _tracks(tmp_path / "audio", per_split=(2, 0, 0))
    monkeypatch.setenv(CRASH_KEYS_ENV, "900100")
    params = {**PARAMS, "extraction": {**EXTRACTION, "workers": 2}}
    rows: dict = {}
    for batch in extract_handcrafted_features(tracks, {}, params):
        rows.update(batch)
    assert rows["900100"].error == "worker crashed (signal SIGSEGV)"
    assert all(rows[t].values.shape == (518,) for t in ("900000", "900001", "900101"))
    table, bad = build_feature_table(tracks, rows, None, params)
    assert sorted(table.index) == ["900000", "900001", "900101"]
    assert bad[["track_id", "reason"]].values.tolist() == [
        ["900100", "feature extraction failed: worker crashed (signal SIGSEGV)"]
    ]


@pytest.mark.slow
def test_a_damaged_feature_row_is_named_and_extracted_again(tmp_path: Path, caplog):
    tracks = _tracks(tmp_path / "audio", per_split=(2, 0, 0))
    store = FeatureRowsDataset(str(tmp_path / "rows"))
    index = FeatureRowsIndexDataset(str(tmp_path / "rows"))
    for batch in extract_handcrafted_features(tracks, index.load(), PARAMS):
        store.save(batch)
    before = store.load()
    damaged = tmp_path / "rows" / "900001.npz"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    with caplog.at_level("WARNING", logger="music_genre.datasets.feature_rows"):
        cache = index.load()
    assert str(damaged) in caplog.text and sorted(cache) == ["900000", "900100", "900101"]
    rerun = list(extract_handcrafted_features(tracks, cache, PARAMS))
    assert [set(batch) for batch in rerun] == [{"900001"}]
    for batch in rerun:
        store.save(batch)
    np.testing.assert_array_equal(store.load()["900001"].values, before["900001"].values)


def test_unknown_source_is_a_clear_error():
    with pytest.raises(ValueError, match="handcrafted.source='csv'"):
        next(extract_handcrafted_features(pd.DataFrame(), {}, {**PARAMS, "source": "csv"}))


# --- standardization and the MLP -------------------------------------------------------------


@pytest.mark.numeric
def test_scaler_is_fitted_on_training_rows_only():
    rng = np.random.default_rng(3)
    ids = [f"{i:06d}" for i in range(30)]
    splits = ["training"] * 20 + ["validation"] * 5 + ["test"] * 5
    values = rng.normal(size=(30, 518)).astype(np.float32)
    values[20:] += 50.0  # validation/test far off: they must not move the statistics
    features = pd.DataFrame(values, index=pd.Index(ids, name="track_id"), columns=feature_columns())
    labels = [i % 2 for i in range(30)]
    tracks = pd.DataFrame(
        {"track_id": ids, "split": splits, "label": labels, "genre": ["Folk", "Rock"] * 15}
    ).iloc[::-1]  # order must not matter
    model_input, scaler = standardize_features(features, tracks)

    train = values[:20].astype(np.float64)
    np.testing.assert_allclose(scaler.mean_, train.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(scaler.scale_, train.std(axis=0), rtol=1e-4)
    assert scaler.feature_names_in_[0] == "chroma_cens.kurtosis.01"
    in_train = model_input.index.get_level_values("split") == "training"
    np.testing.assert_allclose(model_input[in_train].to_numpy().mean(axis=0), 0.0, atol=1e-4)
    assert model_input[~in_train].to_numpy().mean() > 10  # scaled with training statistics
    assert list(model_input.index.names) == ["track_id", "split", "label", "genre"]


@pytest.mark.slow
def test_mlp_parameter_counts_equal_table_1():
    for units, parameters in TABLE_1_PARAMETERS.items():
        assert build_mlp(518, 8, units, 1e-4, 0.02).count_params() == parameters, units


@pytest.mark.slow
def test_two_configuration_sweep_produces_the_report(tmp_path: Path):
    tracks = _tracks(tmp_path / "audio")
    catalog = _run(_store(tmp_path), tracks, PARAMS)

    results = catalog.load("handcrafted_results")
    assert list(results.columns) == RESULT_COLUMNS
    assert results["units"].tolist() == ["(16, 8)", "(8)"]
    assert results["parameters"].tolist() == [
        518 * 16 + 16 + 16 * 8 + 8 + 8 * 2 + 2,
        518 * 8 + 8 + 8 * 2 + 2,
    ]
    assert results[RESULT_COLUMNS[2:]].notna().all().all()
    accuracies = results[["train_accuracy", "val_accuracy", "test_accuracy"]].to_numpy()
    assert ((accuracies >= 0) & (accuracies <= 1)).all()

    runs = catalog.load("handcrafted_mlflow_runs")
    assert [r["run_name"] for r in runs] == ["handcrafted mlp (16, 8)", "handcrafted mlp (8)"]
    for run, row in zip(runs, results.itertuples(), strict=True):
        assert run["params"]["parameters"] == row.parameters
        assert run["metrics"]["test_accuracy"] == pytest.approx(row.test_accuracy)
        assert set(run["history"]) >= {"loss", "val_loss", "accuracy", "val_accuracy"}
        assert 1 <= run["params"]["epochs_trained"] <= PARAMS["mlp"]["max_epochs"]
        assert "learning_curves.png" in run["figures"]
    best_row = results.sort_values(["val_accuracy", "val_loss"], ascending=[False, True]).iloc[0]
    best = catalog.load("handcrafted_mlp")
    assert best.count_params() == best_row["parameters"]
    assert catalog.load("handcrafted_confusion_matrix").axes  # a matplotlib figure
    assert catalog.load("bad_tracks_handcrafted").empty
    counts = runs[0]["params"]
    assert (counts["train_tracks"], counts["val_tracks"], counts["test_tracks"]) == (8, 2, 2)
    # 95 % Wilson interval around each test accuracy (2 test tracks: wide)
    assert (results["test_tracks"] == 2).all()
    assert (
        (results["test_ci_low"] <= results["test_accuracy"])
        & (results["test_accuracy"] <= results["test_ci_high"])
    ).all()
    assert "test_ci_low" in runs[0]["metrics"]
    # the best model's per-track predictions on validation and test, for fusion and McNemar
    validation = catalog.load("handcrafted_validation_predictions")
    test = catalog.load("handcrafted_test_predictions")
    assert (len(validation), len(test)) == (2, 2)
    assert (test["predicted"] == test["label"]).mean() == pytest.approx(best_row["test_accuracy"])
    probabilities = test.filter(like="prob_").to_numpy()
    assert probabilities.shape == (2, 2) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_a_source_list_gives_a_row_per_source_and_saves_the_first(tmp_path: Path):
    """handcrafted.source=[extract, fma_csv]: the same sweep on both feature tables, each row
    saying what its features were computed over; the saved model (and its record) is the first
    source's, the other rows are marked as comparison."""
    tracks = _tracks(tmp_path / "audio")
    rng = np.random.default_rng(5)
    csv = _fma_csv(
        tmp_path / "fma" / "features.csv",
        {int(t): rng.normal(size=518).tolist() for t in tracks["track_id"]},
    )
    entries = {**_store(tmp_path), "fma_features": FmaFeaturesDataset(str(csv))}
    params = {**PARAMS, "mlp": {**PARAMS["mlp"], "hidden_units": [[8]], "max_epochs": 2}}
    catalog = _run(entries, tracks, {**params, "source": ["extract", "fma_csv"]})

    results = catalog.load("handcrafted_results")
    assert list(results.columns) == RESULT_COLUMNS
    assert results["source"].tolist() == ["extract", "fma_csv"]
    assert results["comparison"].tolist() == [False, True]
    assert results["audio"].tolist() == ["whole file (~1.5 s)", "whole track (features.csv)"]
    assert "full-length tracks" in results.loc[1, "training_audio"]
    runs = catalog.load("handcrafted_mlflow_runs")
    assert [r["params"]["source"] for r in runs] == ["extract", "fma_csv"]
    assert [r["tags"]["features_over"] for r in runs] == ["whole_file", "whole_track"]
    assert runs[1]["tags"]["comparison"] == "true" and "comparison" not in runs[0]["tags"]
    info = catalog.load("handcrafted_model_info")
    assert (info["source"], info["features_over"]) == ("extract", "whole_file")
    assert info["median_training_s"] == pytest.approx(1.5)
    assert info["class_names"] == ["Folk", "Rock"]


def test_source_list_is_validated():
    from music_genre.audio.training_audio import handcrafted_sources
    from music_genre.config import ParameterError, validate_parameters

    assert handcrafted_sources({"source": "fma_csv"}) == ["fma_csv"]
    assert handcrafted_sources({"source": ["fma_csv", "extract"]}) == ["fma_csv", "extract"]
    # --params splits on commas: the command line joins sources with "+"
    assert handcrafted_sources({"source": "extract+fma_csv"}) == ["extract", "fma_csv"]
    for bad in (["extract", "extract"], [], ["csv"], "extract+extract", "fma_csv+"):
        with pytest.raises(ValueError, match="handcrafted.source"):
            handcrafted_sources({"source": bad})
    section = dict(PARAMS)
    validate_parameters({"handcrafted": {**section, "source": ["fma_csv", "extract"]}})
    validate_parameters({"handcrafted": {**section, "source": "fma_csv+extract"}})
    for bad in (["extract", "extract"], "extract+extract", "extract+csv"):
        with pytest.raises(ParameterError, match="source"):
            validate_parameters({"handcrafted": {**section, "source": bad}})


@pytest.mark.slow
def test_resumed_run_reuses_every_stored_row(tmp_path: Path):
    tracks = _tracks(tmp_path / "audio", per_split=(1, 1, 1))
    entries = _store(tmp_path)
    first = dict(
        itertools.chain(
            *(
                b.items()
                for b in extract_handcrafted_features(
                    tracks, entries["handcrafted_feature_row_index"].load(), PARAMS
                )
            )
        )
    )
    entries["handcrafted_feature_rows"].save(first)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "rows").glob("*.npz")}
    assert len(stamps) == len(tracks)
    assert list(
        extract_handcrafted_features(
            tracks, entries["handcrafted_feature_row_index"].load(), PARAMS
        )
    ) == [{}]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "rows").glob("*.npz")} == stamps
