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
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import requests
from tqdm.auto import tqdm

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


def _part_path(dest: Path) -> Path:
    return dest.with_suffix(dest.suffix + ".part")


def _retryable_status(status: int) -> bool:
    return status in (408, 429) or 500 <= status < 600


def _stream_once(
    session: requests.Session,
    url: str,
    part: Path,
    chunk_size: int,
    timeout: float,
) -> bool:
    """One GET attempt that appends to (or restarts) ``part``.

    Returns True when ``part`` holds the whole file, False when the ``.part``
    could not be resumed and was deleted (the caller starts over at once);
    raises a ``requests`` exception (retryable or not) otherwise.
    """
    offset = part.stat().st_size if part.exists() else 0
    # identity: byte offsets in Range must refer to the bytes we store.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        logger.info("Resuming %s at byte %d", part.name, offset)

    with session.get(url, headers=headers, stream=True, timeout=timeout) as resp:
        if resp.status_code == 416 and offset:
            # Range not satisfiable: normally the .part already holds the whole file.
            match = _UNSATISFIED_RANGE_RE.search(resp.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) == offset:
                logger.info("%s is already complete (server answered 416)", part.name)
                return True
            # The .part is longer than the file on the server: it cannot be resumed.
            logger.warning(
                "%s has %d bytes but the server's file has %s; starting over",
                part.name,
                offset,
                match.group(1),
            )
            part.unlink()
            return False

        if _retryable_status(resp.status_code):
            raise IncompleteDownloadError(f"server answered HTTP {resp.status_code} for {url}")
        resp.raise_for_status()

        mode = "wb"
        start = 0
        if resp.status_code == 206:
            match = _CONTENT_RANGE_RE.search(resp.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != offset:
                # A range we did not ask for cannot be appended safely.
                logger.warning(
                    "Unexpected Content-Range %r; starting over", resp.headers.get("Content-Range")
                )
                part.unlink(missing_ok=True)
                return False
            mode, start = "ab", offset
        elif offset:
            # 200 to a Range request: the server (or a proxy) ignores ranges and
            # sends the whole file, so overwrite the .part from byte 0.
            logger.warning(
                "Server ignored the Range request for %s; downloading from the start", url
            )

        length_header = resp.headers.get("Content-Length")
        expected_body = int(length_header) if length_header is not None else None
        total = start + expected_body if expected_body is not None else None

        received = 0
        with (
            part.open(mode) as fh,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=None,  # None: no bar when stderr is not a terminal (logs, CI)
                leave=False,
            ) as bar,
        ):
            try:
                for chunk in resp.iter_content(chunk_size=chunk_size):
                    fh.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except requests.exceptions.ChunkedEncodingError as exc:
                # urllib3 reports a body cut short this way; treat it as a dropped connection.
                raise IncompleteDownloadError(
                    f"connection closed after {received} of {expected_body} bytes of {url}"
                ) from exc

        if expected_body is not None and received < expected_body:
            raise IncompleteDownloadError(
                f"connection closed after {received} of {expected_body} bytes of {url}"
            )
        return True


def download_file(
    url: str,
    dest: Path,
    sha1: str | None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    *,
    backoff: float = 2.0,
    session: requests.Session | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resuming and verifying, and return ``dest``.

    Args:
        url: Where to download from.
        dest: Final path. Data goes to ``dest + '.part'`` first and is renamed
            only after the checksum matched.
        sha1: Expected SHA-1 (40 hex digits, or a prefix of it which is then all
            that is checked); ``None`` skips verification.
        chunk_size: Bytes per read from the network.
        timeout: Seconds to wait for a connection or for the next bytes.
        retries: How many times a dropped connection is retried (each retry
            resumes where the last one stopped).
        backoff: Seconds before the first retry, doubled on each further one.
        session: Optional ``requests.Session`` to reuse.

    Raises:
        ChecksumError: The data does not match ``sha1``. A bad ``.part`` is
            deleted so that the next run starts clean; a bad ``dest`` that
            somebody put there is left alone and named in the message.
        requests.RequestException: Network failure after all retries.
    """
    dest = Path(dest)
    part = _part_path(dest)

    if dest.exists():
        # Cache hit (or a file placed by hand for offline use): verify, do not download.
        if sha1 is None:
            logger.info("%s already exists; not downloading it again", dest)
            return dest
        actual = sha1sum(dest, chunk_size)
        if not _sha1_matches(actual, sha1):
            raise ChecksumError(
                dest,
                sha1,
                actual,
                f"The file is corrupt or not the FMA release; delete {dest} and re-run to download it again.",
            )
        _log_verified(dest, sha1)
        logger.info("%s already downloaded; skipping", dest.name)
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    own_session = session is None
    if session is None:
        session = requests.Session()
        session.headers["User-Agent"] = "music-genre-fma-download/0.1"
    try:
        logger.info("Downloading %s -> %s", url, dest)
        attempt = 0
        restarts = 0
        while True:
            try:
                if _stream_once(session, url, part, chunk_size, timeout):
                    break
                # The .part was unusable and deleted: start from 0 without waiting.
                restarts += 1
                if restarts > 2:
                    raise DownloadError(f"the server keeps sending unusable ranges for {url}")
                continue
            except (
                requests.exceptions.ConnectionError,  # includes IncompleteDownloadError
                requests.exceptions.Timeout,
            ) as exc:
                attempt += 1
                if attempt > retries:
                    raise
                delay = backoff * 2 ** (attempt - 1)
                have = part.stat().st_size if part.exists() else 0
                logger.warning(
                    "Download of %s interrupted (%s); retry %d/%d in %.1f s, resuming at byte %d",
                    dest.name,
                    exc,
                    attempt,
                    retries,
                    delay,
                    have,
                )
                time.sleep(delay)
    finally:
        if own_session:
            session.close()

    if sha1 is not None:
        actual = sha1sum(part, chunk_size)
        if not _sha1_matches(actual, sha1):
            # A resumed .part with bad bytes can never become good: remove it.
            part.unlink(missing_ok=True)
            raise ChecksumError(
                dest,
                sha1,
                actual,
                f"The download was corrupted; the partial file {part} was deleted, re-run to download it again.",
            )
        _log_verified(dest, sha1)

    # Only a verified file gets its final name; os.replace is atomic on one filesystem.
    os.replace(part, dest)
    return dest


def _check_member(name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(
            f"refusing zip entry {name!r}: it points outside the extraction folder"
        )


def extract_zip(archive: Path, dest_dir: Path) -> list[Path]:
    """Extract ``archive`` into ``dest_dir`` and return its top-level paths there.

    Everything is unpacked into a temporary folder inside ``dest_dir`` (same
    filesystem, so the final moves are atomic renames); only then are the
    top-level entries moved into place. An existing entry of the same name is
    replaced. Entries with ``..``, absolute paths or drive letters are refused
    before anything is written.
    """
    archive = Path(archive)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)

    with zipfile.ZipFile(archive) as zf:
        members = zf.namelist()
        for name in members:
            _check_member(name)
        tmp = Path(tempfile.mkdtemp(prefix=_EXTRACT_TMP_PREFIX, dir=dest_dir))
        try:
            logger.info("Extracting %s (%d entries) into %s", archive.name, len(members), dest_dir)
            zf.extractall(tmp)
            placed: list[Path] = []
            for entry in sorted(tmp.iterdir()):
                target = dest_dir / entry.name
                if target.exists() or target.is_symlink():
                    # os.replace cannot overwrite a non-empty folder: move the old one
                    # into tmp (deleted below), then rename the new one into place.
                    logger.info("Replacing existing %s", target)
                    os.replace(target, tmp / f"{_EXTRACT_TMP_PREFIX}old-{entry.name}")
                os.replace(entry, target)
                placed.append(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return placed


def _marker(folder: Path, sha1: str) -> Path:
    return folder / f"{_MARKER_PREFIX}{sha1.lower()}"


def _is_extracted(folder: Path, sha1: str) -> bool:
    return _marker(folder, sha1).is_file()


def _remove_stale_temp_dirs(dest_dir: Path) -> None:
    # Left behind only if a previous run was killed mid-extraction; they can be large.
    for stale in dest_dir.glob(f"{_EXTRACT_TMP_PREFIX}*"):
        if stale.is_dir():
            logger.info("Removing leftover temporary folder %s", stale)
            shutil.rmtree(stale, ignore_errors=True)


def _warn_if_low_disk(dest_dir: Path, needed: int) -> None:
    try:
        free = shutil.disk_usage(dest_dir).free
    except OSError:
        return
    if free < needed:
        logger.warning(
            "Only %.1f GiB free in %s, about %.1f GiB are needed (archives + extracted files)",
            free / _GiB,
            dest_dir,
            needed / _GiB,
        )


def fetch_fma(
    dest_dir: Path = Path("data/01_raw"),
    subset: str = "small",
    base_url: str = FMA_BASE_URL,
    keep_archives: bool = True,
    *,
    checksums: Mapping[str, str | None] | None = None,
    retries: int = DEFAULT_RETRIES,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
    backoff: float = 2.0,
) -> dict[str, Path]:
    """Download, verify and extract ``fma_metadata.zip`` and ``fma_<subset>.zip``.

    Archives go to ``dest_dir/archives/``; they unpack to ``dest_dir/fma_metadata/``
    and ``dest_dir/fma_<subset>/``. Both archives are downloaded and verified
    before anything is extracted, so a checksum failure extracts nothing. A
    folder holding its ``.extracted-<sha1>`` marker is complete and skipped
    (not even downloaded).

    Args:
        dest_dir: Target folder (the Kedro raw layer by default).
        subset: ``small``, ``medium`` or ``large``.
        base_url: Folder URL holding the zips (the official host or a mirror).
        keep_archives: Keep the zips after extraction (to re-extract offline).
        checksums: Override of the expected SHA-1 per archive key
            (``metadata``, ``small``, ...), e.g. for a repackaged mirror.
        retries, chunk_size, timeout, backoff: Passed to :func:`download_file`.

    Returns:
        ``{"metadata": <dir>, "audio": <dir>, "archives": <dir>}``.
    """
    if subset not in FMA_SUBSETS:
        raise ValueError(f"subset must be one of {FMA_SUBSETS}, got {subset!r}")
    dest_dir = Path(dest_dir)
    archives_dir = dest_dir / "archives"
    archives_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_dirs(dest_dir)

    keys = ("metadata", subset)
    expected: dict[str, str | None] = {key: FMA_ARCHIVES[key].sha1 for key in keys}
    if checksums:
        expected.update({k: v for k, v in checksums.items() if k in expected})

    pending: list[tuple[FmaArchive, Path, str | None]] = []
    for key in keys:
        info = FMA_ARCHIVES[key]
        sha1 = expected[key]
        folder = dest_dir / info.folder
        if sha1 is not None and _is_extracted(folder, sha1):
            logger.info("%s is already extracted and complete; skipping", folder)
            continue
        archive = archives_dir / info.filename
        if not archive.exists():
            _warn_if_low_disk(dest_dir, 2 * info.approx_size)
        url = base_url.rstrip("/") + "/" + info.filename
        download_file(
            url,
            archive,
            sha1,
            chunk_size=chunk_size,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )
        pending.append((info, archive, sha1))

    # Extract only once every archive has passed verification.
    for info, archive, sha1 in pending:
        placed = extract_zip(archive, dest_dir)
        folder = dest_dir / info.folder
        if folder not in placed:
            raise DownloadError(
                f"{archive.name} did not contain the expected top-level folder {info.folder}/"
            )
        if sha1 is not None:
            # Written last: its presence means the folder is complete.
            _marker(folder, sha1).touch()
        if not keep_archives:
            archive.unlink()
            logger.info("Deleted %s after extraction", archive)
        logger.info("%s ready", folder)

    return {
        "metadata": dest_dir / FMA_ARCHIVES["metadata"].folder,
        "audio": dest_dir / FMA_ARCHIVES[subset].folder,
        "archives": archives_dir,
    }


def _offline_help(dest: Path, subset: str, base_url: str) -> str:
    names = [FMA_ARCHIVES["metadata"].filename, FMA_ARCHIVES[subset].filename]
    urls = "\n".join(f"  {base_url.rstrip('/')}/{n}" for n in names)
    return (
        "To install the data by hand: download these files on a machine with internet access\n"
        f"{urls}\n"
        f"put them into {dest / 'archives'}/ and re-run this command; it then verifies the "
        "checksums and extracts offline."
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (``fma-download``). Returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="fma-download",
        description="Download, verify (SHA-1) and extract the FMA dataset (metadata + one audio subset).",
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=Path("data/01_raw"),
        help="target folder (default: %(default)s)",
    )
    parser.add_argument(
        "--subset", choices=FMA_SUBSETS, default="small", help="audio subset (default: %(default)s)"
    )
    parser.add_argument(
        "--base-url",
        default=FMA_BASE_URL,
        help="folder URL holding the zips, e.g. a mirror (default: %(default)s)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        help="retries per dropped connection (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="network timeout in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--delete-archives",
        action="store_true",
        help="delete the zips after a successful extraction",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)

    # No-op when the application (or pytest) already configured logging.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )

    try:
        paths = fetch_fma(
            args.dest,
            subset=args.subset,
            base_url=args.base_url,
            keep_archives=not args.delete_archives,
            retries=args.retries,
            timeout=args.timeout,
        )
    except IncompleteDownloadError as exc:
        logger.error(
            "Download failed: the connection kept dropping (%s). Re-run the same command to resume "
            "where it stopped.\n%s",
            exc,
            _offline_help(args.dest, args.subset, args.base_url),
        )
        return 1
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        host = urlsplit(args.base_url).netloc or args.base_url
        logger.error(
            "Download failed: the host %s is unreachable (%s).\n%s",
            host,
            exc.__class__.__name__,
            _offline_help(args.dest, args.subset, args.base_url),
        )
        return 1
    except requests.exceptions.RequestException as exc:
        logger.error(
            "Download failed: %s\n%s", exc, _offline_help(args.dest, args.subset, args.base_url)
        )
        return 1
    except (DownloadError, zipfile.BadZipFile, OSError) as exc:
        logger.error("%s", exc)
        return 2

    logger.info("FMA metadata in %s, audio in %s", paths["metadata"], paths["audio"])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
