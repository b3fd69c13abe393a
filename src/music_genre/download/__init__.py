"""Download, verify and unpack the FMA (Free Music Archive) dataset.

The archives are large (fma_small.zip is 7.2 GiB), so the download

* streams to ``<file>.part`` and resumes it with an HTTP ``Range`` request,
  both across re-runs and after a dropped connection within one run;
* verifies the SHA-1 over the whole file before the ``.part`` is renamed
  (atomically) to its final name, so a file without ``.part`` is always good;
* extracts into a temporary folder and moves the result into place
  atomically, writing an ``.extracted-<sha1>`` marker last, so an interrupted
  run never leaves a tree that looks complete but is not.

Offline use: put the zips into ``<dest>/archives/`` by hand and run
``fma-download`` again; it then only verifies and extracts.

One module per job (archives, http, extract, fetch); this package re-exports their public
names.
"""

from __future__ import annotations

from .archives import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    FMA_ARCHIVES,
    FMA_BASE_URL,
    FMA_METADATA_SHA1,
    FMA_METADATA_URL,
    FMA_SMALL_SHA1,
    FMA_SMALL_URL,
    FMA_SUBSETS,
    ChecksumError,
    DownloadError,
    FmaArchive,
    IncompleteDownloadError,
    UnsafeArchiveError,
    sha1sum,
)
from .extract import (
    extract_zip,
)
from .fetch import (
    fetch_fma,
    main,
)
from .http import (
    download_file,
)

__all__ = [
    "FMA_BASE_URL",
    "FmaArchive",
    "FMA_ARCHIVES",
    "FMA_SUBSETS",
    "FMA_METADATA_URL",
    "FMA_METADATA_SHA1",
    "FMA_SMALL_URL",
    "FMA_SMALL_SHA1",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_TIMEOUT",
    "DEFAULT_RETRIES",
    "DownloadError",
    "ChecksumError",
    "UnsafeArchiveError",
    "IncompleteDownloadError",
    "sha1sum",
    "download_file",
    "extract_zip",
    "fetch_fma",
    "main",
]
