"""A CSV that may legitimately be absent (its pipeline has not run yet)."""

from __future__ import annotations

import pandas as pd
from kedro_datasets.pandas import CSVDataset


class OptionalCSVDataset(CSVDataset):
    """``pandas.CSVDataset`` whose ``load`` returns ``None`` when the file does not exist.

    The reporting pipeline reads every model pipeline's results; one not run yet shows as
    "missing" in the summary instead of failing the whole run. Saving is unchanged.
    """

    def load(self) -> pd.DataFrame | None:  # type: ignore[override]
        if not self._exists():
            self._logger.info("%s does not exist yet: reported as missing", self._filepath)
            return None
        return super().load()
