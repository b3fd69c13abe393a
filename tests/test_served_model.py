"""The served model takes audio bytes, not paths: server-side paths only under the operator's
roots, one non-revealing answer for every refused path, limits, and fast answers to hostile
rows (issue #24)."""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from mlflow.exceptions import MlflowException

from music_genre.serving import CnnPredictor, predict_file
from music_genre.serving.served_model import PATH_REFUSED, GenrePredictorModel
from tests.helpers.predictors import tiny_cnn_predictor
from tests.test_predict import GENRES, SETTINGS, _write

FAST_S = 5.0  # every hostile row is answered within this


@pytest.fixture(scope="module")
def predictor() -> CnnPredictor:
    return tiny_cnn_predictor(GENRES, SETTINGS, seed=1)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict[str, Path]:
    """``root`` (the allowed root) with a song, a FIFO, symlinks to /dev/zero and out of the
    root, a folder; outside it an unreadable secret and a sibling folder sharing the prefix."""
    top = tmp_path_factory.mktemp("served")
    root, outside = top / "root", top / "root_sibling"
    root.mkdir()
    outside.mkdir()
    secret = outside / "shadow"
    secret.write_text("root:$6$salt$hash:19000:0:99999:7:::\n")
    secret.chmod(0)
    os.mkfifo(root / "fifo.mp3")
    (root / "zero.mp3").symlink_to("/dev/zero")
    (root / "escape.mp3").symlink_to(secret)
    (root / "folder").mkdir()
    wave = np.zeros(int(700 * 8000), np.float32)  # 700 s of silence: a few kB of FLAC
    sf.write(root / "silence.flac", wave, 8000)
    t = np.arange(int(31 * 22050)) / 22050
    song = 0.3 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
    sf.write(root / "song.mp3", np.stack([song, song], axis=1), 22050, format="MP3")
    return {
        "root": root,
        "song": root / "song.mp3",
        "wav": _write(root / "clip.wav", 31.0),
        "silence": root / "silence.flac",
        "fifo": root / "fifo.mp3",
        "zero": root / "zero.mp3",
        "escape": root / "escape.mp3",
        "folder": root / "folder",
        "missing": root / "missing.mp3",
        "secret": secret,
        "sibling": outside,
    }


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _timed(model: GenrePredictorModel, rows: list[dict]) -> tuple[pd.DataFrame, float]:
    started = time.perf_counter()
    frame = model.predict(None, pd.DataFrame(rows))
    return frame, time.perf_counter() - started


@pytest.mark.numeric
def test_audio_bytes_are_classified_exactly_like_the_file(predictor, tree):
    model = GenrePredictorModel(predictor)
    frame = model.predict(
        None,
        pd.DataFrame(
            {
                "audio": [_b64(tree["song"]), _b64(tree["wav"]), tree["wav"].read_bytes()],
                "name": ["song.mp3", None, "raw bytes.wav"],
            }
        ),
    )
    assert list(frame["path"]) == ["song.mp3", "audio[1]", "raw bytes.wav"]
    assert list(frame["error"]) == ["", "", ""]
    for i, file in enumerate((tree["song"], tree["wav"], tree["wav"])):
        expected = predict_file(predictor, file)
        assert frame["genre"][i] == expected.top(1)[0][0]
        got = [frame[g][i] for g in GENRES]
        np.testing.assert_allclose(got, [expected.probabilities[g] for g in GENRES], atol=1e-5)


def test_paths_are_refused_by_default(predictor, tree):
    frame, elapsed = _timed(GenrePredictorModel(predictor), [{"path": str(tree["wav"])}])
    assert frame["error"][0] == f"{tree['wav']}: {PATH_REFUSED}"
    assert frame["genre"][0] is None and elapsed < FAST_S


@pytest.mark.numeric
def test_a_regular_file_under_an_allowed_root_is_classified(predictor, tree):
    model = GenrePredictorModel(predictor, allowed_roots=[str(tree["root"])])
    frame = model.predict(None, pd.DataFrame({"path": [str(tree["wav"]), f"file://{tree['wav']}"]}))
    expected = predict_file(predictor, tree["wav"])
    for i in range(2):
        assert frame["error"][i] == ""
        got = [frame[g][i] for g in GENRES]
        np.testing.assert_allclose(got, [expected.probabilities[g] for g in GENRES], atol=1e-5)


def test_every_refused_path_gets_the_same_answer_fast(predictor, tree):
    """Outside the root, missing, a folder, a FIFO, a symlink to /dev/zero or out of the root,
    an unreadable file, a relative path, '..', a URL: one message, nothing about which."""
    model = GenrePredictorModel(predictor, allowed_roots=[str(tree["root"])])
    hostile = [
        "/etc/shadow",
        str(tree["secret"]),  # unreadable (mode 000), outside the root
        str(tree["sibling"] / "shadow"),  # a folder whose name starts like the root's
        str(tree["root"] / ".." / "root_sibling" / "shadow"),
        str(tree["missing"]),
        "/root/nonexistent.mp3",
        str(tree["folder"]),
        str(tree["root"]),
        "/root",
        str(tree["fifo"]),  # opening it for reading would block
        str(tree["zero"]),  # a symlink to a device
        "/dev/zero",
        str(tree["escape"]),  # a symlink out of the root
        "song.mp3",  # relative: not the server's working folder
        "s3://bucket/x.mp3",
    ]
    for path in hostile:
        frame, elapsed = _timed(model, [{"path": path}])
        assert frame["error"][0] == f"{path}: {PATH_REFUSED}", path
        assert frame["genre"][0] is None and elapsed < FAST_S, (path, elapsed)


def test_bad_audio_rows_get_a_clear_error_fast(predictor, tree):
    model = GenrePredictorModel(predictor, max_bytes=200_000)
    big = base64.b64encode(os.urandom(200_001)).decode()
    cases = [
        ({"audio": base64.b64encode(b"not audio at all" * 64).decode()}, "cannot decode"),
        ({"audio": base64.b64encode(b"\0" * 10).decode(), "name": "x.mp3"}, "cannot decode"),
        ({"audio": big}, "too large: 200001 bytes > serving.max_bytes=200000"),
        ({"audio": "A" * 2_000_000}, "too large: more than serving.max_bytes=200000"),
        ({"audio": "!!not base64!!"}, "invalid base64"),
        ({"audio": _b64(tree["silence"])}, "too long: more than serving.max_seconds=600 s"),
        ({"audio": 42}, "send the file's bytes as a base64 string"),
        ({"audio": ""}, "no audio"),
        ({"audio": _b64(tree["wav"]), "path": str(tree["wav"])}, "not both"),
    ]
    for row, message in cases:
        frame, elapsed = _timed(model, [row])
        assert message in frame["error"][0], (message, frame["error"][0])
        assert frame["genre"][0] is None and elapsed < FAST_S, (message, elapsed)
        assert "music-genre-serve-" not in frame["error"][0]  # no temporary path leaks
    # a row's error leaves the others classified
    frame = model.predict(None, pd.DataFrame({"audio": ["!!", _b64(tree["song"])]}))
    assert frame["error"][0] and frame["error"][1] == "" and frame["genre"][1] in GENRES


def test_too_many_rows_or_no_audio_column_is_a_400(predictor, tree):
    model = GenrePredictorModel(predictor, max_files=2)
    with pytest.raises(MlflowException, match="too many files: 3 rows > serving.max_files=2") as e:
        model.predict(None, pd.DataFrame({"audio": ["a", "b", "c"]}))
    assert e.value.get_http_status_code() == 400
    with pytest.raises(MlflowException, match="'audio' column") as e:
        model.predict(None, pd.DataFrame({"file": ["x"]}))
    assert e.value.get_http_status_code() == 400


def test_a_model_pickled_before_the_limits_refuses_paths_and_takes_bytes(predictor, tree):
    old = GenrePredictorModel.__new__(GenrePredictorModel)
    old.__dict__.update(predictor=predictor, min_seconds=3.0, max_windows=10)
    frame = old.predict(
        None, pd.DataFrame({"path": [str(tree["wav"]), None], "audio": [None, _b64(tree["wav"])]})
    )
    assert frame["error"][0] == f"{tree['wav']}: {PATH_REFUSED}"
    assert frame["error"][1] == "" and frame["genre"][1] in GENRES


def test_concurrent_requests_predict_one_at_a_time(predictor, tree, monkeypatch):
    """The scoring server runs each request in a thread: two requests' predictions never
    overlap in one process (each would hold its audio and network buffers at once)."""
    from music_genre.serving import served_model

    inside, most, guard = 0, 0, threading.Lock()
    # Without the lock both threads meet here within milliseconds and pass together; with it
    # the first waits out the timeout alone (BrokenBarrierError) and the second finds it broken.
    meeting = threading.Barrier(2, timeout=1.0)

    def predict_file_counting(*args, **kwargs):
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        try:
            meeting.wait()
        except threading.BrokenBarrierError:
            pass
        with guard:
            inside -= 1
        return predict_file(*args, **kwargs)

    monkeypatch.setattr(served_model, "predict_file", predict_file_counting)
    model = GenrePredictorModel(predictor)
    rows = pd.DataFrame({"audio": [_b64(tree["wav"])], "name": ["clip.wav"]})
    frames: list[pd.DataFrame] = []
    threads = [threading.Thread(target=lambda: frames.append(model.predict(None, rows)))]
    threads.append(threading.Thread(target=lambda: frames.append(model.predict(None, rows))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1
    assert [f["error"][0] for f in frames] == ["", ""]
