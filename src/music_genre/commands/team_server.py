"""A team's MLflow tracking server, started locally to try it (``make mlflow-server``) and by the
integration test (``make test-team``): PostgreSQL as the backend store (runs, metrics, the
Model Registry), moto's S3 server as the artefact store, ``mlflow server`` on both, all bound
to 127.0.0.1. The server proxies the artefacts (``--serve-artifacts``): clients only need its
URL (``conf/team/mlflow.yml`` or ``MLFLOW_TRACKING_URI``), no S3 credentials.

PostgreSQL refuses to run as root: as root its commands run as the ``postgres`` user
(``runuser``). moto keeps its bucket in memory: the artefacts live as long as the server runs
(a real team points ``--artifacts-destination`` at its S3 / MinIO bucket).

``python -m music_genre.commands.team_server --port 5002 --root .mlflow-server`` runs until Ctrl-C and
then stops every process it started.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BUCKET = "mlflow-artifacts"
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class TeamServerError(RuntimeError):
    """A component of the server could not be started (the message says which and why)."""


@dataclass
class TeamServer:
    tracking_uri: str
    backend_store_uri: str
    s3_endpoint: str
    bucket: str = BUCKET


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, postgres), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _as_postgres(command: list[str]) -> list[str]:
    """As root, ``command`` as the ``postgres`` user (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _stop(process: subprocess.Popen, first: int = signal.SIGTERM, grace_s: float = 20.0) -> None:
    """Stop ``process``'s whole group (started with start_new_session=True)."""
    for sig, wait_s in ((first, grace_s), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 0)  # children of an exited leader
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            process.poll()
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _wait_for(what: str, ready, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise TeamServerError(f"{what} did not start:\n{tail}")
        time.sleep(0.3)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def _postgres_home(root: Path, cleanup: list[Path]) -> Path:
    """Where PostgreSQL keeps its data: ``root`` itself, or as root, when the ``postgres``
    user cannot reach ``root`` (a 0700 parent such as pytest's), a temporary folder of its
    own, removed on exit."""
    if os.geteuid() != 0:
        return root
    reachable = subprocess.run(
        ["runuser", "-u", "postgres", "--", "test", "-x", str(root)], check=False
    )
    if reachable.returncode == 0:
        return root
    home = Path(tempfile.mkdtemp(prefix="mlflow-server-pg-"))
    home.chmod(0o755)
    cleanup.append(home)
    return home


def _start_postgres(root: Path, port: int, started: list, cleanup: list[Path]) -> str:
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise TeamServerError(
            "PostgreSQL is not installed (no initdb): `apt-get install -y postgresql` as root"
        )
    home = _postgres_home(root, cleanup)
    data, sockets = home / "pg", home / "pg-socket"
    for folder in (data, sockets):
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # PostgreSQL runs as postgres, which must own its folders
            shutil.chown(folder, "postgres", "postgres")
            folder.chmod(0o700)
    log = root / "postgres.log"
    if not (data / "PG_VERSION").exists():
        init = subprocess.run(
            _as_postgres(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust"]
            ),
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if init.returncode != 0:
            raise TeamServerError(f"initdb failed:\n{init.stderr[-2000:]}")
    process = _start(
        _as_postgres(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-k",
                str(sockets),
            ]
        ),
        log,
    )
    started.append((process, signal.SIGINT))  # SIGINT: PostgreSQL's fast shutdown
    _wait_for("PostgreSQL", lambda: _port_open(port), process, log, 60)
    uri = f"postgresql+psycopg2://mlflow@127.0.0.1:{port}/mlflow"
    import psycopg2

    deadline = time.monotonic() + 30
    while True:
        try:
            connection = psycopg2.connect(f"postgresql://mlflow@127.0.0.1:{port}/postgres")
            break
        except psycopg2.OperationalError:  # still starting up
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = 'mlflow'")
        if cursor.fetchone() is None:
            cursor.execute("CREATE DATABASE mlflow")
    connection.close()
    return uri


def _start_s3(root: Path, port: int, started: list) -> str:
    bin_dir = Path(sys.executable).parent
    log = root / "moto.log"
    process = _start([str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], log)
    started.append((process, signal.SIGTERM))
    endpoint = f"http://127.0.0.1:{port}"
    _wait_for("moto's S3 server", lambda: _port_open(port), process, log, 60)
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
    if BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=BUCKET)
    return endpoint


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_CREDENTIALS["AWS_DEFAULT_REGION"],
    }


@contextlib.contextmanager
def team_server(root: Path, port: int | None = None) -> Iterator[TeamServer]:
    """PostgreSQL, moto's S3 and ``mlflow server`` on them (free ports of 127.0.0.1 but
    ``port``, the tracking server's); everything is stopped on exit, also on an error."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    started: list[tuple[subprocess.Popen, int]] = []
    cleanup: list[Path] = []
    try:
        backend = _start_postgres(root, free_port(), started, cleanup)
        endpoint = _start_s3(root, free_port(), started)
        bin_dir = Path(sys.executable).parent
        env = {
            **os.environ,
            **S3_CREDENTIALS,
            "MLFLOW_S3_ENDPOINT_URL": endpoint,
            "PATH": str(bin_dir) + os.pathsep + os.environ.get("PATH", ""),
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        log = root / "mlflow-server.log"
        process = _start(
            [
                str(bin_dir / "mlflow"),
                "server",
                "--backend-store-uri",
                backend,
                "--serve-artifacts",
                "--artifacts-destination",
                f"s3://{BUCKET}",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            log,
            env,
        )
        started.append((process, signal.SIGTERM))
        url = f"http://127.0.0.1:{port}"
        _wait_for("mlflow server", lambda: _http_ok(f"{url}/health"), process, log, 180)
        yield TeamServer(url, backend, endpoint)
    finally:
        for process, sig in reversed(started):
            _stop(process, sig)
        for folder in cleanup:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlflow-server", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--root", default=".mlflow-server", help="PostgreSQL's data and logs")
    args = parser.parse_args(argv)
    try:
        with team_server(Path(args.root), args.port) as server:
            print(  # noqa: T201
                f"MLflow tracking server on {server.tracking_uri} (backend "
                f"{server.backend_store_uri}, artefacts s3://{server.bucket} at "
                f"{server.s3_endpoint}); `kedro run --env team` logs to it. Ctrl-C stops it.",
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except TeamServerError as exc:
        print(f"mlflow-server: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
