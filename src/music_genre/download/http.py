"""A resumable, verified HTTP download (``download_file``): ``<file>.part``, ``Range`` requests,
retries, SHA-1 before the rename."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import requests
from tqdm.auto import tqdm

from .archives import (
    _CONTENT_RANGE_RE,
    _UNSATISFIED_RANGE_RE,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    ChecksumError,
    DownloadError,
    IncompleteDownloadError,
    _log_verified,
    _sha1_matches,
    sha1sum,
)

logger = logging.getLogger(__name__)


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
