"""Run ``genre-predict`` in a fresh interpreter and report which heavy modules it imported
(shared by the tests that check the prediction command's light start-up)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.helpers.processes import run_command

ROOT = Path(__file__).resolve().parents[2]


def run_predict_cli(args: list[str], watched: tuple[str, ...]) -> tuple[list[dict[str, Any]], list]:
    """``genre-predict ARGS`` (with ``--json``) -> (its results, the ``watched`` modules that
    ended up imported). Fails with the command's stderr when it exits non-zero."""
    code = (
        "import json, sys\n"
        "from music_genre.commands.predict import main\n"
        "code = main(sys.argv[1:])\n"
        f"heavy = [m for m in {watched!r} if m in sys.modules]\n"
        "print('IMPORTED=' + json.dumps(heavy), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}
    done = run_command(
        [sys.executable, "-c", code, *args],
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("IMPORTED=")]
    assert len(lines) == 1, done.stderr[-3000:]
    return json.loads(done.stdout), json.loads(lines[0].removeprefix("IMPORTED="))
