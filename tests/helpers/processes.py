"""Processes the tests start: each in a session (process group) of its own, and the whole group
stopped afterwards, also when the test fails or the command runs past its timeout.

``subprocess.run(..., timeout=...)`` kills only its direct child: a grandchild (a Python
started by ``make``, a worker pool of the child) would keep running after the test, holding
memory, files and ports. :func:`run_command` and :func:`stop_process_group` stop every process
of the group.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


def group_members(pgid: int) -> list[int]:
    """Pids of the live processes of group ``pgid`` (zombies waiting to be reaped excluded)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # the process ended meanwhile
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            members.append(int(stat.parent.name))
    return members


def stop_process_group(leader: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM every process of the group ``leader`` leads (started with
    ``start_new_session=True``), wait until all have exited, SIGKILL what is left after
    ``grace_s``; AssertionError naming the survivors when even SIGKILL does not stop them."""
    pgid = leader.pid
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        if group_members(pgid):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while True:
            leader.poll()  # reap the leader so that it does not linger as a zombie
            if not group_members(pgid):
                leader.poll()
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    raise AssertionError(f"processes {group_members(pgid)} of group {pgid} survived SIGKILL")


def run_command(
    args: Sequence[str], timeout: float, *, check: bool = False, **popen: Any
) -> subprocess.CompletedProcess:
    """``subprocess.run(args, capture_output=True, text=True, timeout=timeout, **popen)`` with
    the command in a new session: when it runs past ``timeout``, when the caller is
    interrupted, and also after a normal exit (a daemon it left behind), every process of its
    group is stopped. ``check``: raise CalledProcessError on a non-zero exit."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    popen.setdefault("text", True)
    process = subprocess.Popen(list(args), start_new_session=True, **popen)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process_group(process, grace_s=2.0)
        try:  # what it wrote before it was stopped
            stdout, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # a process outside the group holds its pipes
            stdout, stderr = None, None
        raise subprocess.TimeoutExpired(process.args, timeout, stdout, stderr) from None
    finally:
        stop_process_group(process, grace_s=2.0)
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if check:
        done.check_returncode()
    return done


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now, for a server a test starts: below
    49152, because kedro-viz refuses ports in the ephemeral range, which is where binding to
    port 0 lands on many Linux machines (and where the servers' own client sockets land)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 49_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port between 20000 and 49000 on 127.0.0.1")


@contextlib.contextmanager
def make_serve(project: Path, log: Path, **make_vars: str) -> Iterator[int]:
    """``make serve`` of ``project`` on a free port of 127.0.0.1 (more ``make`` variables as
    keywords): yields the port once ``/ping`` answers; the whole process group (make ->
    genre-serve -> mlflow -> uvicorn) is stopped afterwards, also when the test fails."""
    port = free_port()
    variables = [f"{name}={value}" for name, value in {"SERVE_PORT": port, **make_vars}.items()]
    with open(log, "w") as out:
        server = subprocess.Popen(
            ["make", "--no-print-directory", "-C", str(project), "serve", *variables],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log.read_text()[-3000:]) from None
                time.sleep(1)
        yield port
    finally:
        stop_process_group(server, grace_s=30.0)
