"""Where raw audio lives: a local path, or any fsspec URL (``s3://``, ``gs://``, ``abfs://``...).

Every place that builds or inspects an audio location goes through these helpers, so that a
local path keeps today's fast ``os`` calls and results, and a URL is handled by the protocol's
fsspec filesystem (``fsspec.core.url_to_fs``; s3fs, gcsfs, adlfs... installed separately).
``file://`` URLs count as local paths.

Credentials and endpoints are not passed around: each process (worker processes included, which
read the audio themselves) builds its filesystem from the environment, as fsspec and the
protocol's package do, e.g. ``AWS_ACCESS_KEY_ID``/``AWS_ENDPOINT_URL`` for s3fs, or fsspec's own
``FSSPEC_<PROTOCOL>_<OPTION>`` variables and config files (``fsspec.config``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from music_genre.errors import SetupError

_LOCAL_PROTOCOLS = ("file", "local")

# What ``fs.info`` reports that changes when an object is replaced, first found wins: content
# tags first (S3 ETag, Azure/GCS etag), since an object listing reports them exactly as a
# HEAD request does (s3fs answers ``info`` from the listing when it has one, and a listing has no
# S3 VersionId), then GCS generation and md5Hash, S3 VersionId, and modification times (S3
# LastModified, Azure last_modified, GCS updated, other filesystems' mtime/created).
VERSION_KEYS = (
    "ETag",
    "etag",
    "generation",
    "md5Hash",
    "VersionId",
    "LastModified",
    "last_modified",
    "updated",
    "mtime",
    "created",
)


def protocol(location: str | os.PathLike[str]) -> str:
    """The (outermost) fsspec protocol of ``location``; ``file`` for a plain path."""
    from fsspec.utils import get_protocol

    return get_protocol(str(location))


def is_url(location: str | os.PathLike[str]) -> bool:
    """True for a URL of a non-local filesystem (``s3://b/k``, ``simplecache::gs://b/k``)."""
    return protocol(location) not in _LOCAL_PROTOCOLS


def local_path(location: str | os.PathLike[str]) -> str:
    """A local location as a plain path (``file:///a/b`` -> ``/a/b``); a plain path as is."""
    text = str(location)
    if protocol(text) in _LOCAL_PROTOCOLS and "://" in text:
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem._strip_protocol(text)
    return text


class FilesystemUnavailableError(SetupError, OSError):
    """A URL whose protocol fsspec does not know or whose package is not installed."""


def url_to_fs(location: str, **options: Any) -> tuple[Any, str]:
    """``(filesystem, path within it)`` of a URL (``fsspec.core.url_to_fs``, with its storage
    ``options``); a
    :class:`FilesystemUnavailableError` naming the URL and the package to install when the
    protocol is unknown or its package (s3fs, gcsfs, adlfs...) is missing."""
    from fsspec.core import url_to_fs as _url_to_fs

    try:
        return _url_to_fs(location, **options)
    except (ImportError, ValueError) as exc:
        raise FilesystemUnavailableError(
            f"{location}: no filesystem for protocol {protocol(location)!r} ({exc}); install "
            "the protocol's fsspec package (s3fs for s3://, e.g. pip install 'music-genre[s3]'; "
            "gcsfs for gs://; adlfs for abfs://) in every environment that reads it"
        ) from exc


def _url_root(location: str) -> str:
    return location.rstrip("/")


def absolute(location: str | os.PathLike[str]) -> str:
    """A local path made absolute (``Path.resolve``); a URL as is (without a trailing ``/``)."""
    if is_url(location):
        return _url_root(str(location))
    return str(Path(local_path(location)).resolve())


def join(root: str | os.PathLike[str], *parts: str) -> str:
    """``root/part/...``: ``pathlib`` for a local path, ``/``-joined for a URL."""
    if is_url(root):
        tail = "/".join(str(p).strip("/") for p in parts if str(p).strip("/"))
        return f"{_url_root(str(root))}/{tail}" if tail else _url_root(str(root))
    return str(Path(local_path(root)).joinpath(*parts))


def relative_to(location: str, root: str) -> str | None:
    """``location`` as a POSIX path relative to ``root``, or None when it is not below it."""
    if is_url(root) or is_url(location):
        prefix = _url_root(str(root)) + "/"
        return location[len(prefix) :] if location.startswith(prefix) else None
    # As written first (a symlink in the collection is below its root even when its target is
    # not), then with symlinks resolved (a root given through a symlinked folder).
    for resolve in (os.path.abspath, os.path.realpath):
        try:
            return (
                Path(resolve(local_path(location))).relative_to(resolve(local_path(root)))
            ).as_posix()
        except ValueError:
            continue
    return None


def _on_storage(location: str, method: str, *args: Any) -> Any:
    """``fs.<method>(path, *args)`` for a URL; any failure becomes an ``OSError`` naming it
    (the protocol packages raise their own types for network and credential errors)."""
    fs, path = url_to_fs(location)
    try:
        return getattr(fs, method)(path, *args)
    except FileNotFoundError:
        raise FileNotFoundError(f"{location}: file not found") from None
    except OSError as exc:
        raise OSError(f"{location}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - network/credential errors of the protocol package
        raise OSError(f"{location}: cannot reach it ({type(exc).__name__}: {exc})") from exc


def is_file(location: str | os.PathLike[str]) -> bool:
    if is_url(location):
        return bool(_on_storage(str(location), "isfile"))
    return Path(local_path(location)).is_file()


def is_dir(location: str | os.PathLike[str]) -> bool:
    if is_url(location):
        return bool(_on_storage(str(location), "isdir"))
    return Path(local_path(location)).is_dir()


def list_files(root: str | os.PathLike[str]) -> list[str]:
    """Every file below ``root`` as a sorted POSIX path relative to it: ``os.walk`` for a local
    folder (fast on 100k files), ``fs.find`` (one recursive listing) for a URL."""
    if is_url(root):
        url = _url_root(str(root))
        base = url_to_fs(url)[1].rstrip("/")
        listed = _on_storage(url, "find")
        found = [p[len(base) + 1 :] for p in listed if p.startswith(base + "/")]
        return sorted(p for p in found if p and not p.endswith("/"))
    top = local_path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(top)
        found.extend((rel_dir / filename).as_posix() for filename in filenames)
    return sorted(found)


def version_of(info: dict[str, Any]) -> str:
    """The first of :data:`VERSION_KEYS` that ``fs.info`` gave, as ``key=value``; ``""`` when
    the filesystem reports none of them (then only the size tells a changed object)."""
    for key in VERSION_KEYS:
        value = info.get(key)
        if value not in (None, ""):
            return f"{key}={value}"
    return ""


def file_stamp(location: str | os.PathLike[str]) -> tuple[int, int | str]:
    """``(size, version)`` that identify an unchanged file.

    Local: ``(st_size, st_mtime_ns)`` from ``os.stat``, as the stores always used (so their
    earlier results stay valid). URL: the size and :func:`version_of` of ``fs.info``, e.g.
    ``(81234, 'ETag="9b2c..."')`` on S3. Raises ``OSError`` (``FileNotFoundError`` when absent)
    naming the location; a storage error of another type (network, credentials) becomes an
    ``OSError`` too, so callers report it as an unavailable file.
    """
    if not is_url(location):
        stat = os.stat(local_path(location))
        return stat.st_size, stat.st_mtime_ns
    info = url_info(str(location))
    return int(info.get("size") or 0), version_of(info)


def url_info(location: str) -> dict[str, Any]:
    """``fs.info`` of a URL; ``FileNotFoundError``/``OSError`` naming the URL when it fails."""
    return _on_storage(location, "info")
