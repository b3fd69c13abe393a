"""The genre predictor as an MLflow pyfunc model (what the serving pipeline logs and
``genre-serve`` serves); its own module because importing MLflow takes seconds, which the
prediction command does not need.

Clients send audio, not paths: each row carries a file's bytes, base64-encoded, in an
``audio`` column (and optionally its ``name``). A server-side ``path`` column is read only
under the roots the operator lists (``serving.allowed_roots``, none by default) and only for
regular files; every refused, missing or unreadable path gets the same answer, so the
server's answers say nothing about its file system. Limits: ``serving.max_bytes`` per file,
``serving.max_files`` per request, ``serving.max_seconds`` of decoded audio per file.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import stat
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from music_genre.audio.decode import AUDIO_EXTENSIONS
from music_genre.infra.location import is_url
from music_genre.serving import GenrePrediction, Predictor, predict_file, predictions_frame

# MLflow asks for type hints it could validate requests with; this model checks its input
# itself (an 'audio' or 'path' column) and answers a wrong request with a 400 and a short
# message.
warnings.filterwarnings(
    "ignore", message=".*Add type hints to the `predict` method", category=UserWarning
)

MAX_BYTES = 50 * 1024 * 1024  # per file
MAX_FILES = 16  # rows per request
MAX_SECONDS = 600.0  # decoded audio per file
# Decoded audio above these is refused before it is decoded in full (memory: a short file of
# 8 channels at 384 kHz is already large).
MAX_CHANNELS = 8
MAX_SAMPLE_RATE = 384_000

# MLflow's scoring server runs each request's predict in a thread of its own: concurrent
# requests would each hold their decoded audio, spectrograms and ONNX Runtime buffers at once
# (RSS growing with the clients; benchmarks/serve_memory.py). On a few cores they gain no
# throughput from it, so predictions run one at a time per process.
PREDICT_LOCK = threading.Lock()

PATH_REFUSED = "path not allowed or not a readable regular file under serving.allowed_roots"
REQUEST_FORM = (
    '{"dataframe_split": {"columns": ["audio", "name"], "data": [["<base64 of the file>", '
    '"song.mp3"]]}} (or dataframe_records: [{"audio": "<base64>", "name": "song.mp3"}])'
)


class RowError(Exception):
    """One row cannot be classified; the message is the row's ``error``."""


def _bad_request(message: str) -> Exception:
    # MlflowException with BAD_REQUEST: the scoring server answers 400 with this message
    # (any other exception becomes a 400 carrying a Python stack trace)
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import BAD_REQUEST

    return MlflowException(message, error_code=BAD_REQUEST)


def _present(value: Any) -> bool:
    """A cell that holds something (pandas fills a record's missing keys with NaN/None)."""
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return not (isinstance(value, str | bytes) and len(value) == 0)


def decode_base64(value: Any, max_bytes: int) -> bytes:
    """The bytes of a base64 cell (line breaks and spaces ignored), or a RowError when it is
    not base64 or decodes to more than ``max_bytes`` (refused before decoding)."""
    if isinstance(value, bytes | bytearray):  # an in-process caller may pass bytes as they are
        data = bytes(value)
    elif isinstance(value, str):
        limit = 4 * math.ceil(max_bytes / 3)
        if len(value) > 2 * limit + 1024:  # far too long even with line breaks: don't copy it
            raise RowError(f"too large: more than serving.max_bytes={max_bytes} bytes")
        text = "".join(value.split())
        if len(text) > limit:
            raise RowError(f"too large: more than serving.max_bytes={max_bytes} bytes")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise RowError(
                "invalid base64 in the 'audio' column (send the file's bytes, base64-encoded)"
            ) from None
    else:
        raise RowError(
            f"the 'audio' column holds a {type(value).__name__}: send the file's bytes as a "
            "base64 string"
        )
    if len(data) > max_bytes:
        raise RowError(f"too large: {len(data)} bytes > serving.max_bytes={max_bytes}")
    if not data:
        raise RowError("empty file (0 bytes)")
    return data


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def read_allowed_path(path: Any, allowed_roots: Sequence[str], max_bytes: int) -> bytes:
    """The bytes of a server-side file, read only when it is a regular file under one of
    ``allowed_roots`` (symlinks resolved first; the resolved file must be under a root too).

    Any refusal (outside the roots, relative, a URL, missing, a directory, a FIFO, a device,
    unreadable) is one RowError, :data:`PATH_REFUSED`: the answer never tells which. A path
    outside every root is refused before the file system is asked anything about it. The file
    is opened without following a last symlink and without blocking, then checked on its
    descriptor (no race between the check and the read)."""
    if not isinstance(path, str) or not allowed_roots or is_url(path) or "\0" in path:
        raise RowError(PATH_REFUSED)
    if path.startswith("file://"):
        path = path.removeprefix("file://")
    if not os.path.isabs(path):
        raise RowError(PATH_REFUSED)
    lexical = os.path.normpath(path)
    roots = [os.path.normpath(os.path.abspath(r)) for r in allowed_roots]
    if not any(_under(lexical, root) for root in roots):
        raise RowError(PATH_REFUSED)
    real = os.path.realpath(lexical)
    if not any(_under(real, os.path.realpath(root)) for root in roots):
        raise RowError(PATH_REFUSED)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except OSError:
        raise RowError(PATH_REFUSED) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RowError(PATH_REFUSED)
        if info.st_size > max_bytes:
            raise RowError(f"too large: {info.st_size} bytes > serving.max_bytes={max_bytes}")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        raise RowError(PATH_REFUSED) from None
    finally:
        os.close(fd)
    if size > max_bytes:  # it grew after fstat
        raise RowError(f"too large: more than serving.max_bytes={max_bytes} bytes")
    if size == 0:
        raise RowError("empty file (0 bytes)")
    return b"".join(chunks)


def check_decoded_length(path: str, max_seconds: float) -> None:
    """A RowError when the audio at ``path`` decodes to more than ``max_seconds`` or has more
    channels or a higher rate than served files may have; the file is decoded block by block
    and only until the limit, so a small file that expands to hours is never decoded in full.
    A file libsndfile cannot open is left to the prediction (its decoder fallback reports
    it), but first decoded by that fallback only up to the limit."""
    import soundfile as sf

    try:
        handle = sf.SoundFile(path)
    except Exception:  # noqa: BLE001 - not libsndfile's: try the fallback, bounded
        _check_fallback_length(path, max_seconds)
        return
    with handle:
        if handle.channels > MAX_CHANNELS or handle.samplerate > MAX_SAMPLE_RATE:
            raise RowError(
                f"unsupported audio: {handle.channels} channels at {handle.samplerate} Hz "
                f"(at most {MAX_CHANNELS} channels at {MAX_SAMPLE_RATE} Hz)"
            )
        limit = int(max_seconds * handle.samplerate)
        frames = 0
        try:
            while frames <= limit:
                block = handle.read(frames=min(1 << 16, limit + 1 - frames), dtype="float32")
                if len(block) == 0:
                    break
                frames += len(block)
        except Exception:  # noqa: BLE001 - a damaged stream: the prediction reports it
            return
    if frames > limit:
        raise RowError(f"too long: more than serving.max_seconds={max_seconds:g} s of audio")


def _check_fallback_length(path: str, max_seconds: float) -> None:
    try:
        import librosa
    except ImportError:  # a packaged model's environment: the prediction says it cannot decode
        return

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            signal, rate = librosa.load(path, sr=None, mono=False, duration=max_seconds + 1.0)
    except Exception:  # noqa: BLE001 - not audio: the prediction says so
        return
    if signal.shape[-1] > max_seconds * rate:
        raise RowError(f"too long: more than serving.max_seconds={max_seconds:g} s of audio")


def _suffix(name: str) -> str:
    """The file's extension when it is an audio extension (the decoders may use it), else
    none: nothing else of a client's name reaches the file system."""
    suffix = os.path.splitext(name)[1].lower()
    return suffix if suffix in AUDIO_EXTENSIONS else ""


class GenrePredictorModel(PythonModel):
    """The prediction command as an MLflow pyfunc model: input a table with an ``audio``
    column (base64 of each file's bytes; optional ``name``), or a ``path`` column of files
    under ``allowed_roots``; output one row per file (``path``: the name or path given, top
    genre, a probability column per genre, and an ``error`` column that is empty when the
    file was classified).

    Models pickled before these fields existed take the class defaults: they refuse paths
    and accept audio bytes, like new ones."""

    allowed_roots: tuple[str, ...] = ()
    max_bytes: int = MAX_BYTES
    max_files: int = MAX_FILES
    max_seconds: float = MAX_SECONDS

    def __init__(
        self,
        predictor: Predictor,
        min_seconds: float = 3.0,
        max_windows: int = 10,
        allowed_roots: Sequence[str] = (),
        max_bytes: int = MAX_BYTES,
        max_files: int = MAX_FILES,
        max_seconds: float = MAX_SECONDS,
    ) -> None:
        self.predictor = predictor
        self.min_seconds = min_seconds
        self.max_windows = max_windows
        self.allowed_roots = tuple(str(root) for root in allowed_roots)
        self.max_bytes = int(max_bytes)
        self.max_files = int(max_files)
        self.max_seconds = float(max_seconds)

    def load_context(self, context: Any) -> None:
        # A packaged model (music_genre.serving.package) carries its predictor as artifacts;
        # one pickled before that holds it in the pickle.
        artifacts = getattr(context, "artifacts", None) or {}
        if "predictor" in artifacts:
            from music_genre.serving.package import load_predictor

            self.predictor = load_predictor(artifacts)
        # The decoders' fallback (librosa -> audioread) imports for seconds on first use: done
        # when the server loads the model, so that no request (a file libsndfile cannot read
        # is answered through it) waits for it. A packaged model's environment has no librosa
        # (its requirements are what libsndfile-readable audio needs): no fallback there.
        try:
            import librosa.core.audio  # noqa: F401
        except ImportError:
            pass

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        columns = list(getattr(model_input, "columns", []))
        if "audio" not in columns and "path" not in columns:
            raise _bad_request(
                f"the input needs an 'audio' column (each file's bytes, base64), got columns "
                f"{columns}: send {REQUEST_FORM}"
            )
        if len(model_input) > self.max_files:
            raise _bad_request(
                f"too many files: {len(model_input)} rows > serving.max_files={self.max_files} "
                "per request; send them in several requests"
            )
        rows = model_input.to_dict("records")
        with PREDICT_LOCK:
            predictions = [self._predict_row(i, row) for i, row in enumerate(rows)]
        return predictions_frame(predictions, self.predictor.class_names)

    def _predict_row(self, index: int, row: dict[str, Any]) -> GenrePrediction:
        audio, path, name = row.get("audio"), row.get("path"), row.get("name")
        if _present(name):
            label = str(name)
        elif _present(path) and not _present(audio):
            label = str(path)
        else:
            label = f"audio[{index}]"
        try:
            if _present(audio) and _present(path):
                raise RowError("give either 'audio' or 'path' in a row, not both")
            if _present(audio):
                data = decode_base64(audio, self.max_bytes)
            elif _present(path):
                data = read_allowed_path(path, self.allowed_roots, self.max_bytes)
            else:
                raise RowError(f"no audio: send {REQUEST_FORM}")
            return self._predict_bytes(data, label)
        except RowError as exc:
            return GenrePrediction(path=label, model=self.predictor.label, error=f"{label}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one bad row must not fail the request
            return GenrePrediction(
                path=label,
                model=self.predictor.label,
                error=f"{label}: cannot classify it ({type(exc).__name__})",
            )

    def _predict_bytes(self, data: bytes, label: str) -> GenrePrediction:
        """Classify a file's bytes: written to a private folder (mode 0700, a random name,
        deleted afterwards) and classified exactly as ``genre-predict`` classifies a file."""
        with tempfile.TemporaryDirectory(prefix="music-genre-serve-") as folder:
            file = Path(folder) / f"audio{_suffix(label)}"
            with open(file, "xb") as out:
                out.write(data)
            check_decoded_length(str(file), self.max_seconds)
            result = predict_file(self.predictor, file, self.min_seconds, self.max_windows)
        result.path = label
        if result.error:  # the temporary file's name means nothing to the client
            result.error = result.error.replace(str(file), label).replace(folder, "")
        return result
