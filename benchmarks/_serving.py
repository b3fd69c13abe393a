"""Pieces shared by the benchmarks of the served genre predictor (serve_memory.py,
serve_load.py): a free port of 127.0.0.1, a server process group started, awaited and stopped,
the request body a client sends, one timed request, and the RSS of the server's process tree."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

try:  # optional: /proc is read without it
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(command: list[str], **popen: object) -> subprocess.Popen:
    """``command`` in a session of its own, so that :func:`stop_server` stops its whole
    process group (a server that starts children: mlflow -> uvicorn)."""
    return subprocess.Popen(command, start_new_session=True, **popen)  # type: ignore[call-overload]


def wait_until_up(server: subprocess.Popen, port: int, timeout_s: float = 180.0) -> None:
    """Returns once ``/ping`` answers on ``port``; RuntimeError when the server exits first or
    does not answer within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
            return
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited (status {server.returncode})") from None
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server did not answer /ping in {timeout_s:.0f} s"
                ) from None
            time.sleep(0.5)


def stop_server(server: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM to the server's process group, SIGKILL to what is left of it after ``grace_s``
    (the leader may exit before its children: the group is waited for, not only the leader)."""
    deadline = time.monotonic() + grace_s
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=grace_s)
        while time.monotonic() < deadline:
            os.killpg(server.pid, 0)  # ProcessLookupError once no process of the group is left
            time.sleep(0.1)
        os.killpg(server.pid, signal.SIGKILL)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    except ProcessLookupError:
        pass


def request_body(path: Path, name: str | None = None) -> bytes:
    """What a client posts to /invocations for one audio file: its bytes, base64-encoded."""
    audio = base64.b64encode(path.read_bytes()).decode()
    frame = {"columns": ["audio", "name"], "data": [[audio, name or path.name]]}
    return json.dumps({"dataframe_split": frame}).encode()


def post(port: int, body: bytes, timeout_s: float = 600.0) -> tuple[float, str | None]:
    """One request to /invocations: (milliseconds until the whole answer was read, None) or
    (milliseconds, why it failed): a status other than 200, a row's ``error``, a broken
    connection or a timeout."""
    started = time.perf_counter()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            status, text = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        detail = error.read()[:200].decode(errors="replace")
        return (time.perf_counter() - started) * 1000, f"HTTP {error.code}: {detail}"
    except OSError as error:  # refused, reset, timed out
        return (time.perf_counter() - started) * 1000, f"{type(error).__name__}: {error}"
    elapsed = (time.perf_counter() - started) * 1000
    if status != 200:
        return elapsed, f"HTTP {status}"
    try:
        row = json.loads(text)["predictions"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return elapsed, f"unexpected answer: {text[:200]!r}"
    return elapsed, (row.get("error") or None)


def _proc_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _proc_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:  # gone meanwhile
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    """The resident memory of ``pid`` and all its descendants, summed, in MiB (psutil when
    installed, else /proc)."""
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total / 2**20
    return sum(_proc_rss_kib(p) for p in _proc_tree(pid)) / 1024
