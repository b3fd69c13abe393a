"""Tests for music_genre.download against a real HTTP server on 127.0.0.1.

The server supports Range requests (206 + Content-Range, 416) and can be told
to drop the connection part-way through a body or to ignore Range headers.
"""

from __future__ import annotations

import hashlib
import io
import logging
import random
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from music_genre import download as dl

CHUNK = 1024  # client chunk size; the cut below is a multiple so the resume offset is exact
CUT = 8 * CHUNK


@dataclass
class Seen:
    method: str
    path: str
    range: str | None


class FakeFMAHandler(BaseHTTPRequestHandler):
    server: FakeFMAServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        srv = self.server
        range_header = self.headers.get("Range")
        with srv.lock:
            srv.seen.append(Seen("GET", self.path, range_header))
            cut = srv.cut_once.pop(self.path, None)
        name = self.path.rsplit("/", 1)[-1]
        data = srv.files.get(name)
        if data is None or not self.path.startswith("/fma/"):
            self.send_error(404)
            return

        start = 0
        status = 200
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and not srv.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if cut is not None:
            # Simulate a dropped connection: announce the full length, send less, hang up.
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


class FakeFMAServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), FakeFMAHandler)
        self.files = files
        self.seen: list[Seen] = []
        self.cut_once: dict[str, int] = {}
        self.ignore_range = False
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/fma/"

    def url(self, name: str) -> str:
        return self.base_url + name

    def gets(self, name: str | None = None) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if name is None or s.path.endswith("/" + name)]


@dataclass
class Archives:
    files: dict[str, bytes]
    sha1: dict[str, str]
    mp3: bytes
    tracks_csv: bytes = field(default=b"")


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    # Stored, not deflated: random bytes do not compress and the size stays predictable.
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never let requests route 127.0.0.1 traffic through a proxy from the environment.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture()
def archives() -> Archives:
    rng = __import__("random").Random(1234)
    mp3 = bytes(rng.getrandbits(8) for _ in range(48 * 1024))
    tracks = b"track_id,genre_top\n2,Hip-Hop\n"
    files = {
        "fma_metadata.zip": _zip(
            {"fma_metadata/tracks.csv": tracks, "fma_metadata/genres.csv": b"genre_id\n"}
        ),
        "fma_small.zip": _zip({"fma_small/000/000002.mp3": mp3, "fma_small/README.txt": b"small"}),
    }
    sha1 = {
        "metadata": hashlib.sha1(files["fma_metadata.zip"]).hexdigest(),
        "small": hashlib.sha1(files["fma_small.zip"]).hexdigest(),
    }
    return Archives(files=files, sha1=sha1, mp3=mp3, tracks_csv=tracks)


@pytest.fixture()
def server(archives: Archives) -> Iterator[FakeFMAServer]:
    srv = FakeFMAServer(dict(archives.files))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def _fast(**kw: object) -> dict[str, object]:
    return {"chunk_size": CHUNK, "timeout": 5.0, "backoff": 0.0, **kw}


# --------------------------------------------------------------------------- constants


def test_constants_match_the_published_checksums() -> None:
    assert dl.FMA_METADATA_URL == "https://os.unil.cloud.switch.ch/fma/fma_metadata.zip"
    assert dl.FMA_SMALL_URL == "https://os.unil.cloud.switch.ch/fma/fma_small.zip"
    assert dl.FMA_METADATA_SHA1 == "f0df49ffe5f2a6008d7dc83c6915b31835dfe733"
    assert dl.FMA_SMALL_SHA1 == "ade154f733639d52e35e32f5593efe5be76c6d70"
    assert dl.FMA_ARCHIVES["medium"].sha1 == "c67b69ea"
    assert dl.FMA_ARCHIVES["large"].sha1 == "497109f4"
    assert dl.FMA_ARCHIVES["small"].folder == "fma_small"


# --------------------------------------------------------------------------- download_file


def test_full_download_verified(server: FakeFMAServer, archives: Archives, tmp_path: Path) -> None:
    dest = tmp_path / "a" / "fma_small.zip"
    out = dl.download_file(server.url("fma_small.zip"), dest, archives.sha1["small"], **_fast())
    assert out == dest
    assert dest.read_bytes() == archives.files["fma_small.zip"]
    assert not (tmp_path / "a" / "fma_small.zip.part").exists()
    assert [s.range for s in server.gets()] == [None]


def test_interrupted_transfer_resumes_with_range(
    server: FakeFMAServer, archives: Archives, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.cut_once["/fma/fma_small.zip"] = CUT
    dest = tmp_path / "fma_small.zip"
    with caplog.at_level(logging.WARNING, logger="music_genre.download"):
        dl.download_file(
            server.url("fma_small.zip"), dest, archives.sha1["small"], retries=2, **_fast()
        )
    assert [s.range for s in server.gets("fma_small.zip")] == [None, f"bytes={CUT}-"]
    assert dest.read_bytes() == archives.files["fma_small.zip"]
    assert "interrupted" in caplog.text
    assert not dest.with_suffix(".zip.part").exists()


def test_interrupted_transfer_without_retries_keeps_part_for_next_run(
    server: FakeFMAServer, archives: Archives, tmp_path: Path
) -> None:
    server.cut_once["/fma/fma_small.zip"] = CUT
    dest = tmp_path / "fma_small.zip"
    with pytest.raises(dl.IncompleteDownloadError, match=f"after {CUT} of"):
        dl.download_file(
            server.url("fma_small.zip"), dest, archives.sha1["small"], retries=0, **_fast()
        )
    part = tmp_path / "fma_small.zip.part"
    assert part.stat().st_size == CUT
    assert not dest.exists()
    # The next run resumes the .part.
    dl.download_file(
        server.url("fma_small.zip"), dest, archives.sha1["small"], retries=0, **_fast()
    )
    assert server.gets()[-1].range == f"bytes={CUT}-"
    assert dest.read_bytes() == archives.files["fma_small.zip"]


def test_resume_from_existing_part(
    server: FakeFMAServer, archives: Archives, tmp_path: Path
) -> None:
    data = archives.files["fma_small.zip"]
    offset = 12345
    (tmp_path / "fma_small.zip.part").write_bytes(data[:offset])
    dest = dl.download_file(
        server.url("fma_small.zip"), tmp_path / "fma_small.zip", archives.sha1["small"], **_fast()
    )
    assert [s.range for s in server.gets()] == [f"bytes={offset}-"]
    assert dest.read_bytes() == data


def test_server_ignoring_range_restarts_from_zero(
    server: FakeFMAServer, archives: Archives, tmp_path: Path
) -> None:
    server.ignore_range = True
    data = archives.files["fma_small.zip"]
    (tmp_path / "fma_small.zip.part").write_bytes(data[:5000])
    dest = dl.download_file(
        server.url("fma_small.zip"), tmp_path / "fma_small.zip", archives.sha1["small"], **_fast()
    )
    assert server.gets()[0].range == "bytes=5000-"
    assert dest.read_bytes() == data  # not the 5000 bytes twice


def test_complete_part_gets_416_and_is_accepted(
    server: FakeFMAServer, archives: Archives, tmp_path: Path
) -> None:
    data = archives.files["fma_small.zip"]
    (tmp_path / "fma_small.zip.part").write_bytes(data)
    dest = dl.download_file(
        server.url("fma_small.zip"), tmp_path / "fma_small.zip", archives.sha1["small"], **_fast()
    )
    assert server.gets()[0].range == f"bytes={len(data)}-"
    assert dest.read_bytes() == data


def test_oversized_part_is_discarded(
    server: FakeFMAServer, archives: Archives, tmp_path: Path
) -> None:
    data = archives.files["fma_small.zip"]
    (tmp_path / "fma_small.zip.part").write_bytes(data + b"garbage")
    dest = dl.download_file(
        server.url("fma_small.zip"),
        tmp_path / "fma_small.zip",
        archives.sha1["small"],
        retries=0,
        **_fast(),
    )
    assert [s.range for s in server.gets()] == [f"bytes={len(data) + 7}-", None]
    assert dest.read_bytes() == data


def test_checksum_mismatch_raises_and_deletes_part(
    server: FakeFMAServer, archives: Archives, tmp_path: Path
) -> None:
    dest = tmp_path / "fma_small.zip"
    wrong = "0" * 40
    with pytest.raises(dl.ChecksumError) as info:
        dl.download_file(server.url("fma_small.zip"), dest, wrong, **_fast())
    msg = str(info.value)
    assert "fma_small.zip" in msg
    assert wrong in msg and archives.sha1["small"] in msg
    assert "re-run" in msg
    assert info.value.expected == wrong and info.value.actual == archives.sha1["small"]
    assert not dest.exists()
    assert not (tmp_path / "fma_small.zip.part").exists()


def test_cached_file_is_not_downloaded_again(
    server: FakeFMAServer, archives: Archives, tmp_path: Path
) -> None:
    dest = tmp_path / "fma_small.zip"
    dl.download_file(server.url("fma_small.zip"), dest, archives.sha1["small"], **_fast())
    assert len(server.gets()) == 1
    mtime = dest.stat().st_mtime_ns
    dl.download_file(server.url("fma_small.zip"), dest, archives.sha1["small"], **_fast())
    assert len(server.gets()) == 1  # no second GET
    assert dest.stat().st_mtime_ns == mtime


def test_bad_cached_file_is_reported_not_overwritten(
    server: FakeFMAServer, archives: Archives, tmp_path: Path
) -> None:
    dest = tmp_path / "fma_small.zip"
    dest.write_bytes(b"not the archive")
    with pytest.raises(dl.ChecksumError, match=r"delete .*fma_small\.zip and re-run"):
        dl.download_file(server.url("fma_small.zip"), dest, archives.sha1["small"], **_fast())
    assert server.gets() == []
    assert dest.read_bytes() == b"not the archive"


def test_sha1_prefix_is_verified_and_logged(
    server: FakeFMAServer, archives: Archives, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = archives.sha1["small"][:8]
    with caplog.at_level(logging.INFO, logger="music_genre.download"):
        dl.download_file(server.url("fma_small.zip"), tmp_path / "ok.zip", prefix, **_fast())
    assert "first 8 hex digits" in caplog.text
    with pytest.raises(dl.ChecksumError):
        dl.download_file(server.url("fma_small.zip"), tmp_path / "bad.zip", "deadbeef", **_fast())


def test_http_404_is_not_retried(server: FakeFMAServer, tmp_path: Path) -> None:
    with pytest.raises(requests.exceptions.HTTPError):
        dl.download_file(server.url("nope.zip"), tmp_path / "nope.zip", None, retries=3, **_fast())
    assert len(server.gets()) == 1


# --------------------------------------------------------------------------- extract_zip


def test_extract_zip_layout_and_replaces_existing(archives: Archives, tmp_path: Path) -> None:
    archive = tmp_path / "fma_small.zip"
    archive.write_bytes(archives.files["fma_small.zip"])
    dest = tmp_path / "raw"
    (dest / "fma_small").mkdir(parents=True)
    (dest / "fma_small" / "stale.txt").write_text("old")
    placed = dl.extract_zip(archive, dest)
    assert placed == [dest / "fma_small"]
    assert (dest / "fma_small" / "000" / "000002.mp3").read_bytes() == archives.mp3
    assert not (dest / "fma_small" / "stale.txt").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["fma_small"]  # no temp folder left


@pytest.mark.parametrize(
    "evil", ["../evil.txt", "fma_small/../../evil.txt", "/abs/evil.txt", "C:/evil.txt"]
)
def test_extract_zip_refuses_path_traversal(evil: str, tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip({"fma_small/ok.txt": b"ok", evil: b"pwned"}))
    dest = tmp_path / "raw" / "inner"
    with pytest.raises(dl.UnsafeArchiveError, match="refusing"):
        dl.extract_zip(archive, dest)
    assert not (tmp_path / "raw" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert list(dest.iterdir()) == []  # nothing extracted at all


# --------------------------------------------------------------------------- fetch_fma


def test_fetch_fma_downloads_verifies_and_extracts(
    server: FakeFMAServer, archives: Archives, tmp_path: Path
) -> None:
    dest = tmp_path / "01_raw"
    paths = dl.fetch_fma(dest, "small", server.base_url, checksums=archives.sha1, **_fast())
    assert paths == {
        "metadata": dest / "fma_metadata",
        "audio": dest / "fma_small",
        "archives": dest / "archives",
    }
    assert (dest / "fma_metadata" / "tracks.csv").read_bytes() == archives.tracks_csv
    assert (dest / "fma_small" / "000" / "000002.mp3").read_bytes() == archives.mp3
    assert (dest / "fma_small" / f".extracted-{archives.sha1['small']}").is_file()
    assert (dest / "fma_metadata" / f".extracted-{archives.sha1['metadata']}").is_file()
    assert sorted(p.name for p in (dest / "archives").iterdir()) == [
        "fma_metadata.zip",
        "fma_small.zip",
    ]
    assert sorted(p.name for p in dest.iterdir()) == ["archives", "fma_metadata", "fma_small"]
    assert len(server.gets()) == 2

    # Second run: everything is complete, so no GET and no re-extraction.
    mp3 = dest / "fma_small" / "000" / "000002.mp3"
    mtime = mp3.stat().st_mtime_ns
    dl.fetch_fma(dest, "small", server.base_url, checksums=archives.sha1, **_fast())
    assert len(server.gets()) == 2
    assert mp3.stat().st_mtime_ns == mtime


def test_fetch_fma_checksum_mismatch_extracts_nothing(
    server: FakeFMAServer, archives: Archives, tmp_path: Path
) -> None:
    dest = tmp_path / "01_raw"
    bad = {**archives.sha1, "small": "f" * 40}
    with pytest.raises(dl.ChecksumError) as info:
        dl.fetch_fma(dest, "small", server.base_url, checksums=bad, **_fast())
    assert "fma_small.zip" in str(info.value)
    assert "f" * 40 in str(info.value) and archives.sha1["small"] in str(info.value)
    assert not (dest / "fma_metadata").exists()
    assert not (dest / "fma_small").exists()
    assert not (dest / "archives" / "fma_small.zip.part").exists()
    assert not (dest / "archives" / "fma_small.zip").exists()
    # The good metadata archive is kept (cached for the next run) but not extracted.
    assert (dest / "archives" / "fma_metadata.zip").is_file()


def test_fetch_fma_offline_from_placed_archives_and_delete_archives(
    server: FakeFMAServer, archives: Archives, tmp_path: Path
) -> None:
    dest = tmp_path / "01_raw"
    (dest / "archives").mkdir(parents=True)
    for name, data in archives.files.items():
        (dest / "archives" / name).write_bytes(data)
    # The server has the same archives: any request for them would show in its log.
    dl.fetch_fma(
        dest,
        "small",
        server.base_url,
        keep_archives=False,
        checksums=archives.sha1,
        **_fast(),
    )
    assert (dest / "fma_small" / "000" / "000002.mp3").read_bytes() == archives.mp3
    assert list((dest / "archives").iterdir()) == []
    assert server.gets() == []
    # Archives gone, but the markers say the folders are complete: still no network.
    dl.fetch_fma(dest, "small", server.base_url, checksums=archives.sha1, **_fast())
    assert server.gets() == []


def test_fetch_fma_rejects_unknown_subset(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="subset"):
        dl.fetch_fma(tmp_path, "tiny")


# --------------------------------------------------------------------------- main


def test_main_against_local_server(
    server: FakeFMAServer, archives: Archives, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("metadata", "small"):
        info = dl.FMA_ARCHIVES[key]
        monkeypatch.setitem(
            dl.FMA_ARCHIVES, key, dl.FmaArchive(info.filename, archives.sha1[key], info.approx_size)
        )
    dest = tmp_path / "01_raw"
    rc = dl.main(
        ["--dest", str(dest), "--subset", "small", "--base-url", server.base_url, "--retries", "0"]
    )
    assert rc == 0
    assert (dest / "fma_metadata" / "tracks.csv").is_file()
    assert (dest / "fma_small" / "000" / "000002.mp3").is_file()


def test_main_unreachable_host_is_friendly(
    unused_port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dest = tmp_path / "01_raw"
    base = f"http://127.0.0.1:{unused_port}/fma/"
    with caplog.at_level(logging.INFO):
        rc = dl.main(["--dest", str(dest), "--base-url", base, "--retries", "0", "--timeout", "2"])
    assert rc != 0
    text = caplog.text
    assert "unreachable" in text
    assert f"127.0.0.1:{unused_port}" in text
    assert str(dest / "archives") in text
    assert "fma_small.zip" in text and "fma_metadata.zip" in text
    assert "re-run" in text
    assert not (dest / "fma_metadata").exists()


def test_main_dropped_connection_says_rerun_to_resume(
    server: FakeFMAServer,
    archives: Archives,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A metadata archive of 2.5 network chunks, cut after the first: the .part keeps exactly
    # that chunk (a cut inside a chunk loses the chunk), and the re-run resumes after it.
    big = _zip(
        {"fma_metadata/tracks.csv": random.Random(5).randbytes(5 * dl.DEFAULT_CHUNK_SIZE // 2)}
    )
    server.files["fma_metadata.zip"] = big
    server.cut_once["/fma/fma_metadata.zip"] = dl.DEFAULT_CHUNK_SIZE
    sha1 = {"metadata": hashlib.sha1(big).hexdigest(), "small": archives.sha1["small"]}
    for key in ("metadata", "small"):
        info = dl.FMA_ARCHIVES[key]
        monkeypatch.setitem(
            dl.FMA_ARCHIVES, key, dl.FmaArchive(info.filename, sha1[key], info.approx_size)
        )
    args = ["--dest", str(tmp_path), "--base-url", server.base_url, "--retries", "0"]
    assert dl.main(args) == 1
    assert "kept dropping" in caplog.text and "Re-run the same command to resume" in caplog.text
    part = tmp_path / "archives" / "fma_metadata.zip.part"
    assert part.read_bytes() == big[: dl.DEFAULT_CHUNK_SIZE]
    assert not (tmp_path / "archives" / "fma_metadata.zip").exists()

    assert dl.main(args) == 0  # the re-run
    assert [s.range for s in server.gets("fma_metadata.zip")] == [
        None,
        f"bytes={dl.DEFAULT_CHUNK_SIZE}-",
    ]
    assert (tmp_path / "archives" / "fma_metadata.zip").read_bytes() == big
    assert not part.exists()
    assert (tmp_path / "fma_small" / "000" / "000002.mp3").read_bytes() == archives.mp3


def test_main_checksum_error_exit_code(
    server: FakeFMAServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Real (published) checksums against the test archives: must fail verification.
    rc = dl.main(["--dest", str(tmp_path), "--base-url", server.base_url, "--retries", "0"])
    assert rc == 2
    assert "SHA-1 mismatch" in caplog.text
    assert not (tmp_path / "fma_metadata").exists()


def test_main_rejects_bad_subset() -> None:
    with pytest.raises(SystemExit) as info:
        dl.main(["--subset", "huge"])
    assert info.value.code != 0
