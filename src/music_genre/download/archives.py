"""The FMA archives (URLs, SHA-1 sums, sizes), the download errors and the SHA-1 checks."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import requests

logger = logging.getLogger(__name__)


FMA_BASE_URL = "https://os.unil.cloud.switch.ch/fma/"

_GiB = 1024**3
_MiB = 1024**2


@dataclass(frozen=True)
class FmaArchive:
    """One FMA archive: file name, known SHA-1 (full or a prefix) and approximate size."""

    filename: str
    sha1: str
    approx_size: int

    @property
    def folder(self) -> str:
        """Top-level folder the archive unpacks to (``fma_small.zip`` -> ``fma_small``)."""
        return self.filename.removesuffix(".zip")


# Checksums published with the dataset (https://github.com/mdeff/fma). For medium
# and large only the first 8 hex digits are known here; those are verified as a prefix.
FMA_ARCHIVES: dict[str, FmaArchive] = {
    "metadata": FmaArchive(
        "fma_metadata.zip", "f0df49ffe5f2a6008d7dc83c6915b31835dfe733", 342 * _MiB
    ),
    "small": FmaArchive(
        "fma_small.zip", "ade154f733639d52e35e32f5593efe5be76c6d70", int(7.2 * _GiB)
    ),
    "medium": FmaArchive("fma_medium.zip", "c67b69ea", 22 * _GiB),
    "large": FmaArchive("fma_large.zip", "497109f4", 93 * _GiB),
}
FMA_SUBSETS: tuple[str, ...] = ("small", "medium", "large")

FMA_METADATA_URL = FMA_BASE_URL + FMA_ARCHIVES["metadata"].filename
FMA_METADATA_SHA1 = FMA_ARCHIVES["metadata"].sha1
FMA_SMALL_URL = FMA_BASE_URL + FMA_ARCHIVES["small"].filename
FMA_SMALL_SHA1 = FMA_ARCHIVES["small"].sha1

DEFAULT_CHUNK_SIZE = 1024 * 1024
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 5
_MARKER_PREFIX = ".extracted-"
_EXTRACT_TMP_PREFIX = ".extracting-"
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE_RE = re.compile(r"bytes\s+\*/(\d+)")


class DownloadError(RuntimeError):
    """Base class for errors raised by this module (other than network errors)."""


class ChecksumError(DownloadError):
    """A file's SHA-1 does not match the published one."""

    def __init__(self, path: Path, expected: str, actual: str, fix: str) -> None:
        self.path = path
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"SHA-1 mismatch for {path.name} ({path}): expected {expected}, got {actual}. {fix}"
        )


class UnsafeArchiveError(DownloadError):
    """A zip entry would be written outside the extraction folder."""


class IncompleteDownloadError(requests.exceptions.ConnectionError):
    """The server closed the connection before sending the announced number of bytes.

    A ``ConnectionError`` subclass so that it is retried (and resumed) like any
    other dropped connection.
    """


def _is_full_sha1(sha1: str) -> bool:
    return len(sha1) == 40


def sha1sum(path: Path, chunk_size: int = DEFAULT_CHUNK_SIZE) -> str:
    """SHA-1 hex digest of a file, read in chunks (the archives do not fit in memory)."""
    digest = hashlib.sha1()
    with path.open("rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _sha1_matches(actual: str, expected: str) -> bool:
    # A short expected value is a known prefix (medium/large): compare only that much.
    return actual.lower().startswith(expected.lower())


def _log_verified(path: Path, expected: str) -> None:
    if _is_full_sha1(expected):
        logger.info("Verified SHA-1 of %s", path.name)
    else:
        logger.warning(
            "Verified only the first %d hex digits of the SHA-1 of %s (%s...): the full "
            "checksum is not known here, so this is a weaker check than for the other archives",
            len(expected),
            path.name,
            expected,
        )
