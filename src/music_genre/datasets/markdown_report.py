"""A Markdown report that kedro-viz previews rendered (tables included)."""

from __future__ import annotations

import markdown
from kedro_datasets._typing import HTMLPreview

from .atomic_files import AtomicTextDataset


class MarkdownReportDataset(AtomicTextDataset):
    """A ``.md`` text file, saved atomically, previewed in kedro-viz as HTML."""

    def preview(self) -> HTMLPreview:
        if not self._exists():
            return HTMLPreview("<p>Not written yet: run the pipeline that produces it.</p>")
        return HTMLPreview(markdown.markdown(self.load(), extensions=["tables"]))
