"""Kedro-datasets' figure datasets, saved atomically (see :mod:`.atomic_files`).

A module of their own: importing them imports matplotlib's pyplot and plotly (about a second),
which the commands that only read tables and models (``genre-predict``) do not need.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.plotly import JSONDataset as PlotlyJSONDataset
from matplotlib.figure import Figure

from .atomic_files import AtomicSaveMixin


class AtomicPlotlyJSONDataset(AtomicSaveMixin, PlotlyJSONDataset):
    """``plotly.JSONDataset``, saved atomically."""


class AtomicMatplotlibDataset(AtomicSaveMixin, MatplotlibDataset):
    """``matplotlib.MatplotlibDataset``, saved atomically when it holds one figure (a list or
    dict of figures is a folder of images, saved as stock)."""

    def _saves_one_local_file(self, data: Any) -> bool:
        return isinstance(data, Figure) and super()._saves_one_local_file(data)

    def load(self) -> Any:
        """The saved image as an array (notebooks show it with ``plt.imshow``); the stock
        dataset cannot load at all."""
        import matplotlib.image
        from kedro.io.core import get_filepath_str

        path = get_filepath_str(self._get_load_path(), self._protocol)
        with self._fs.open(path, mode="rb") as image:
            return matplotlib.image.imread(image, format=PurePosixPath(self._filepath).suffix[1:])
