"""Tables that may legitimately be absent: a pipeline not run yet, or a cache not built yet."""

from __future__ import annotations

import pandas as pd

from .atomic_files import AtomicCSVDataset, AtomicJSONDataset, AtomicParquetDataset


class OptionalCSVDataset(AtomicCSVDataset):
    """An atomic ``pandas.CSVDataset`` whose ``load`` returns ``None`` when the file is absent.

    The reporting pipeline reads every model pipeline's results; one not run yet shows as
    "missing" in the summary instead of failing the whole run. Saving is unchanged.
    """

    may_be_absent = True  # a run may start without it (see hooks.MissingInputsHook)

    def load(self) -> pd.DataFrame | None:  # type: ignore[override]
        if not self._exists():
            self._logger.info("%s does not exist yet: reported as missing", self._filepath)
            return None
        return super().load()


class OptionalParquetDataset(AtomicParquetDataset):
    """An atomic ``pandas.ParquetDataset`` read as a cache: ``None`` when absent or unreadable.

    Used for what an earlier run already computed (for example the probe of every audio file).
    A cache that cannot be read only costs recomputation, so it is logged, never fatal.
    """

    may_be_absent = True

    def load(self) -> pd.DataFrame | None:  # type: ignore[override]
        if not self._exists():
            self._logger.info("%s does not exist yet: nothing to reuse", self._filepath)
            return None
        try:
            return super().load()
        except Exception as exc:  # noqa: BLE001 - an interrupted write must not stop the run
            self._logger.warning(
                "%s cannot be read (%s): recomputing everything it held", self._filepath, exc
            )
            return None


class OptionalJSONDataset(AtomicJSONDataset):
    """An atomic ``json.JSONDataset`` whose ``load`` returns ``None`` when the file is absent:
    a record that models saved before it existed do not have (e.g. ``handcrafted_model_info``),
    or that a pipeline not run yet has not written."""

    may_be_absent = True

    def load(self) -> dict | None:  # type: ignore[override]
        if not self._exists():
            self._logger.info("%s does not exist (yet): none recorded", self._filepath)
            return None
        return super().load()
