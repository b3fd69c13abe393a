"""``fetch_fma``: download, verify and extract the chosen FMA subsets; ``main``: the
``fma-download`` command."""

from __future__ import annotations

import argparse
import logging
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .archives import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    FMA_ARCHIVES,
    FMA_BASE_URL,
    FMA_SUBSETS,
    DownloadError,
    FmaArchive,
    IncompleteDownloadError,
)
from .extract import _is_extracted, _marker, _remove_stale_temp_dirs, _warn_if_low_disk, extract_zip
from .http import download_file

logger = logging.getLogger(__name__)


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
