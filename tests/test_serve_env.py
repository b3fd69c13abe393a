"""`make test-serve-env` (issue #24): the logged genre predictor serves from a fresh environment
built from its own requirements: ``mlflow models serve --env-manager uv`` on 127.0.0.1, no
project installed there (``music_genre`` comes from the model's code_paths), answering a base64
audio request as the predictor answers in process.

Offline but for the package index: uv does not read pip's configuration, so the indexes pip
uses here (``pip config list``: its files and ``PIP_*`` variables) are handed to uv as its own
variables. ``UV_CACHE_DIR`` empty measures a cold cache.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from music_genre.serving import export_networks, predict_file
from music_genre.serving.package import SERVE_REQUIREMENTS, log_genre_predictor
from music_genre.serving.served_model import GenrePredictorModel
from tests.helpers.predictors import tiny_cnn_predictor
from tests.helpers.processes import free_port, stop_process_group
from tests.test_predict import GENRES, SETTINGS, _write_mp3

pytestmark = [pytest.mark.serve_env, pytest.mark.slow]

BIN = Path(sys.executable).parent
START_S = 600  # environment built with a cold uv cache on a slow link, then the server's start
# The same pinned numpy/soundfile/soxr/ONNX Runtime decode and run the same ONNX graph in both
# processes: only float32 reduction order may differ (~1e-7 per probability), far below this.
SERVED_ATOL = 1e-5
PYPI = "https://pypi.org/simple"  # pip's index-url when none is configured


def uv_index_env() -> dict[str, str]:
    """pip's index options as uv's variables (pip's variables win over its files, as in pip;
    a UV_* variable already set wins over both).

    pip merges the files of every index and takes the most specific wheel; uv takes a version's
    files from the first index that has it. So pip's main index comes first: the extra indexes
    here hold pure-Python builds of some packages (soundfile's without libsndfile) that pip
    never picks while the main index has a platform wheel."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    options: dict[str, str] = {}
    for line in sorted(listed.splitlines(), key=lambda entry: entry.startswith(":env:")):
        key, _, value = line.partition("=")
        options[key.rsplit(".", 1)[-1]] = value.strip("'\"")
    env = {}
    if "extra-index-url" in options or "index-url" in options:
        indexes = [options.get("index-url", PYPI), *options.get("extra-index-url", "").split()]
        env["UV_INDEX"] = " ".join(indexes)
        env["UV_INDEX_STRATEGY"] = "unsafe-best-match"  # every index for every package, as pip
    if "find-links" in options:
        env["UV_FIND_LINKS"] = options["find-links"]
    if "constraint" in options:
        env["UV_CONSTRAINT"] = options["constraint"]
    return {key: value for key, value in env.items() if key not in os.environ}


def _wait_for(port: int, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_S
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(log.read_text()[-4000:]) from None
            time.sleep(1)


def _post(port: int, payload: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def test_the_logged_model_serves_from_an_environment_built_from_its_requirements(
    mlflow_store, tmp_path
):
    mlflow = mlflow_store
    predictor = export_networks(tiny_cnn_predictor(GENRES, SETTINGS, seed=5))
    with mlflow.start_run() as run:
        log_genre_predictor(GenrePredictorModel(predictor))
    song = _write_mp3(tmp_path / "song.mp3", 7.0)
    expected = predict_file(predictor, song)

    port, envs, log = free_port(), tmp_path / "envs", tmp_path / "serve.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV")  # nothing of the project's environment
    }
    env.update(
        MLFLOW_TRACKING_URI=mlflow.get_tracking_uri(),
        MLFLOW_ENV_ROOT=str(envs),  # a fresh environment, not one an earlier run built
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # uv
        **uv_index_env(),
    )
    command = [str(BIN / "mlflow"), "models", "serve", "-m", f"runs:/{run.info.run_id}/model"]
    command += ["--env-manager", "uv", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "w") as out:
        server = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_for(port, server, log)
        audio = base64.b64encode(song.read_bytes()).decode("ascii")
        answer = _post(
            port, {"dataframe_split": {"columns": ["audio", "name"], "data": [[audio, "s.mp3"]]}}
        )
        row = answer["predictions"][0]
        refused = _post(port, {"dataframe_records": [{"path": str(song)}]})["predictions"][0]
    finally:
        stop_process_group(server, grace_s=30.0)

    assert row["error"] == "" and row["path"] == "s.mp3"
    assert row["genre"] == expected.top(1)[0][0]
    np.testing.assert_allclose(
        [row[g] for g in GENRES],
        [expected.probabilities[g] for g in GENRES],
        rtol=0,
        atol=SERVED_ATOL,
    )
    assert refused["genre"] is None and "not allowed" in refused["error"]
    # the environment was built here from the model's pins, without the project
    (site,) = envs.glob("*/lib/python*/site-packages")
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert {d.replace("-", "_") for d in SERVE_REQUIREMENTS} <= installed
    assert not {"kedro", "music_genre", "librosa", "tensorflow"} & installed
