"""Audio backbones (their own front end on the audio file: musicnn): ``AudioEmbeddingExtractor``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .registry import BackboneSpec, CutLevelError
from .weights import WeightsChoice, build_backbone, network_key


@dataclass(frozen=True)
class AudioWindow:
    """Which part of each track an audio backbone reads: the first ``duration_s`` seconds (the
    same window the spectrograms cover), decoded to the backbone's sample rate, mono."""

    duration_s: float = 29.70
    pad_mode: str = "repeat"  # a clip shorter than one network patch is looped (or zeros)
    workers: int | None = None  # decoding processes (None: every core); not in the fingerprint

    def __post_init__(self) -> None:
        if not float(self.duration_s) > 0:
            raise ValueError(
                f"transfer.audio.duration_s={self.duration_s!r}: use a positive number of "
                "seconds, e.g. 29.70 (the spectrograms' window)."
            )
        if self.pad_mode not in ("repeat", "zeros"):
            raise ValueError(f"transfer.audio.pad_mode={self.pad_mode!r}: use 'repeat' or 'zeros'.")

    def fingerprint(self) -> str:
        return f"audio-{float(self.duration_s):g}s-{self.pad_mode}"


def load_window_signal(
    path: str, sample_rate: int, duration_s: float, offset_s: float = 0.0
) -> np.ndarray:
    """One window of ``path``, mono, at ``sample_rate`` (``load_audio``); a module function so
    that worker processes can run it without the network."""
    from music_genre.audio.decode import load_audio

    signal, _ = load_audio(
        path, sample_rate=sample_rate, mono=True, duration_s=duration_s, offset_s=offset_s
    )
    if signal.size == 0:
        raise ValueError(f"{path}: no audio samples at offset {offset_s:g} s")
    if not np.isfinite(signal).all():
        raise ValueError(f"{path}: decoded audio contains NaN or infinite values")
    return signal


def load_window_front_end(
    front_end: Callable[[np.ndarray, str], Any],
    pad_mode: str,
    path: str,
    sample_rate: int,
    duration_s: float,
    offset_s: float = 0.0,
) -> Any:
    """Decode one window (:func:`load_window_signal`) and run the backbone's front end on it:
    the per-track work, which worker processes do while the network runs elsewhere."""
    return front_end(load_window_signal(path, sample_rate, duration_s, offset_s), pad_mode)


@dataclass
class AudioEmbeddingExtractor:
    """Audio file -> {cut level: vector} through a backbone with its own front end.

    The same object serves the transfer pipeline (window at offset 0) and prediction (windows
    at other offsets), so both decode, resample and embed identically. The network is built on
    first use.
    """

    spec: BackboneSpec
    weights: WeightsChoice
    cut_levels: tuple[str, ...]
    window: AudioWindow = field(default_factory=AudioWindow)
    # The exported network of the one cut level (prediction): run instead of the Keras model.
    network: Any = None
    _model: Any = field(default=None, init=False, repr=False)
    _network_key: tuple | None = field(default=None, init=False, repr=False)

    @property
    def network_key(self) -> tuple:
        """What defines the network and its inputs (:func:`network_key`)."""
        if self._network_key is None:
            self._network_key = network_key(
                self.spec, self.weights, self.cut_levels, self.window.fingerprint()
            )
        return self._network_key

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the built network (a worker builds its own: :func:`audio_batch`)."""
        self.network_key  # noqa: B018 - computed once here (a weights file is hashed once)
        return {**self.__dict__, "_model": None}

    def build_network(self) -> None:
        self.model  # noqa: B018 - builds the model

    def __post_init__(self) -> None:
        if self.network is not None and len(self.cut_levels) != 1:
            raise ValueError("an exported network gives one cut level")
        if (
            self.spec.input_kind != "audio"
            or self.spec.audio_front_end is None
            or self.spec.embed_front_ends is None
        ):
            raise ValueError(f"{self.spec.name} is not an audio backbone")
        unknown = [cut for cut in self.cut_levels if cut not in self.spec.cut_levels]
        if unknown:
            raise CutLevelError(
                f"Cut level(s) {unknown} are not outputs of {self.spec.name}: use "
                f"{list(self.spec.cut_levels)}. Fix the experiments in "
                "conf/base/parameters/transfer.yml."
            )

    @property
    def model(self) -> Any:
        """The Keras model (built on first use), or the exported network when given."""
        if self.network is not None:
            return self.network
        if self._model is None:
            self._model = build_backbone(self.spec, self.weights)
        return self._model

    @property
    def built(self) -> bool:
        return self._model is not None

    @property
    def signal_settings(self) -> tuple[int, float]:
        """(sample rate, window seconds): the arguments of :func:`load_window_signal`."""
        return int(self.spec.audio_sample_rate or 16000), float(self.window.duration_s)

    def load_signal(self, path: str, offset_s: float = 0.0) -> np.ndarray:
        """The window of ``path`` at the backbone's rate, mono (``load_audio``)."""
        return load_window_signal(path, *self.signal_settings, offset_s)

    def front_end_task(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """``(function, leading arguments)``: ``function(*leading, path, rate, seconds)``
        decodes a window and runs the front end (:func:`load_window_front_end`); picklable,
        for worker processes."""
        assert self.spec.audio_front_end is not None
        return load_window_front_end, (self.spec.audio_front_end, self.window.pad_mode)

    def front_end(self, signal: np.ndarray) -> Any:
        """The network's input for one decoded window (musicnn: its 3-s log-mel patches)."""
        assert self.spec.audio_front_end is not None
        return self.spec.audio_front_end(signal, self.window.pad_mode)

    def embed_front_ends(self, inputs: Sequence[Any]) -> list[dict[str, np.ndarray]]:
        """Per track {cut: vector} for the front-end outputs of many tracks (musicnn: their
        patches concatenated, run through the network in calls of ``MAX_PATCHES_PER_CALL``)."""
        assert self.spec.embed_front_ends is not None
        rows = self.spec.embed_front_ends(list(inputs), self.model)
        return [
            {cut: np.asarray(row[cut], dtype=np.float32).reshape(-1) for cut in self.cut_levels}
            for row in rows
        ]

    def embed(self, signal: np.ndarray) -> dict[str, np.ndarray]:
        return self.embed_front_ends([self.front_end(signal)])[0]

    def __call__(self, path: str, offsets: Sequence[float] = (0.0,)) -> dict[str, np.ndarray]:
        """{cut: (len(offsets), dim)} for windows of one file (one network pass for all)."""
        rows = self.embed_front_ends(
            [self.front_end(self.load_signal(path, offset)) for offset in offsets]
        )
        return {cut: np.stack([r[cut] for r in rows]) for cut in self.cut_levels}

    def time_single_clip(self, signal: np.ndarray, runs: int = 10) -> dict[str, float]:
        """Milliseconds per clip: front end + network on one decoded window (batch of one
        clip), mean of ``runs`` after a warm-up. Every cut level comes out of the same pass,
        so all get this time."""
        self.embed(signal)
        start = time.perf_counter()
        for _ in range(runs):
            self.embed(signal)
        elapsed = (time.perf_counter() - start) / runs * 1000.0
        return {cut: elapsed for cut in self.cut_levels}
