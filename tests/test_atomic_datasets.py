"""The catalog's file datasets save atomically: an interrupted save keeps the previous file."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import pytest  # noqa: E402
from kedro.io import DatasetError  # noqa: E402

from music_genre.datasets import (  # noqa: E402
    AtomicCSVDataset,
    AtomicJSONDataset,
    AtomicMatplotlibDataset,
    AtomicParquetDataset,
    AtomicPickleDataset,
    AtomicPlotlyJSONDataset,
    AtomicTextDataset,
    MarkdownReportDataset,
)


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("interrupted mid-save")


class BadColumn:
    """A cell whose string form fails: the CSV writer dies after writing the header."""

    def __str__(self) -> str:
        raise RuntimeError("interrupted mid-save")

    __repr__ = __str__


@pytest.mark.parametrize(
    ("dataset_type", "name", "good", "bad"),
    [
        (
            AtomicCSVDataset,
            "t.csv",
            pd.DataFrame({"a": [1, 2]}),
            pd.DataFrame({"a": [BadColumn()]}),
        ),
        (
            AtomicParquetDataset,
            "t.parquet",
            pd.DataFrame({"a": [1, 2]}),
            pd.DataFrame({"a": [BadColumn()]}),
        ),
        (AtomicPickleDataset, "m.pkl", {"model": 1}, {"model": Unpicklable()}),
        (AtomicJSONDataset, "m.json", {"acc": 0.5}, {"acc": BadColumn()}),
    ],
)
def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temporary(
    tmp_path: Path, dataset_type, name, good, bad
):
    dataset = dataset_type(filepath=str(tmp_path / name))
    dataset.save(good)
    before = (tmp_path / name).read_bytes()
    with pytest.raises(DatasetError):
        dataset.save(bad)
    assert (tmp_path / name).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    loaded = dataset_type(filepath=str(tmp_path / name)).load()
    if isinstance(good, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, good)
    else:
        assert loaded == good


def test_saves_land_under_the_final_name_with_normal_permissions(tmp_path: Path):
    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    AtomicMatplotlibDataset(filepath=str(tmp_path / "plots" / "cm.png")).save(figure)
    AtomicTextDataset(filepath=str(tmp_path / "summary.md")).save("# Summary\n")
    AtomicPlotlyJSONDataset(filepath=str(tmp_path / "chart.json")).save(go.Figure(go.Bar(y=[1])))
    plt.close(figure)

    png = tmp_path / "plots" / "cm.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "summary.md").read_text() == "# Summary\n"
    assert AtomicPlotlyJSONDataset(filepath=str(tmp_path / "chart.json")).load().data[0].y == (1,)
    # mkstemp's 0600 must not leak into results other users read
    assert png.stat().st_mode & 0o044 == 0o044
    assert not list(tmp_path.rglob(".*"))


def test_several_figures_are_still_saved_as_a_folder(tmp_path: Path):
    figures = {"a.png": plt.figure(), "b.png": plt.figure()}
    AtomicMatplotlibDataset(filepath=str(tmp_path / "many")).save(figures)
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["a.png", "b.png"]
    plt.close("all")


def test_the_markdown_report_is_previewed_as_rendered_html(tmp_path: Path):
    report = MarkdownReportDataset(filepath=str(tmp_path / "summary.md"))
    assert "Not written yet" in report.preview()
    report.save("# Summary\n\n| model | test |\n|---|---|\n| cnn | 0.375 |\n")
    html = report.preview()
    assert "<h1>Summary</h1>" in html
    assert "<td>cnn</td>" in html and "<td>0.375</td>" in html


@pytest.mark.slow
def test_a_saved_study_cnn_loads_in_a_process_that_never_imported_the_cnn_code(tmp_path):
    """`kedro run --pipelines=serving` loads cnn_best_model without the cnn pipeline."""
    import json
    import sys

    import numpy as np

    from music_genre.datasets import KerasModelDataset
    from music_genre.models.cnn import build_cnn
    from tests.helpers.processes import run_command

    path = tmp_path / "cnn.keras"
    model = build_cnn(2, filters=[2, 2, 2, 2], input_shape=(32, 64, 1))
    KerasModelDataset(filepath=str(path)).save(model)
    code = (
        "import json, sys; from music_genre.datasets import KerasModelDataset; "
        f"m = KerasModelDataset(filepath={str(path)!r}).load(); "
        "assert 'music_genre.models.cnn' in sys.modules; "
        "print(json.dumps([m.count_params(), [w.ravel().tolist() for w in m.get_weights()]]))"
    )
    result = run_command([sys.executable, "-c", code], timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    count, weights = json.loads(result.stdout.strip().splitlines()[-1])
    assert count == model.count_params()
    saved = model.get_weights()
    assert len(weights) == len(saved)
    for loaded, original in zip(weights, saved, strict=True):
        np.testing.assert_array_equal(np.float32(loaded), original.ravel())
