"""FMA's 518 handcrafted audio features, computed from any audio file.

The Free Music Archive ships these features precomputed (``fma_metadata/features.csv``); the study
trained its MLP on them. This module computes them from audio with FMA's recipe, so that the
demo data, other collections and the prediction command get the same 518 features in the same
layout:

- 11 librosa features summarised over time by 7 statistics, one column per
  (feature, statistics, number), e.g. ``("mfcc", "mean", "01")``;
- the columns sorted by feature, then statistic, then number, exactly as in ``features.csv``.

**Same recipe, not the same audio.** FMA computed ``features.csv`` over the *full-length* tracks
(mdeff/fma issue #8), whereas fma_small's files are 30-s clips. Its values are reproduced only
from the same full-length audio: features extracted from a clip describe the clip, and come
from another distribution (measured on FMA's track 2 against its fma_small clip: 90 of 350
values within 0.01 + 2 %; spectral_centroid min 0.00 over the track, 510 over the clip; mfcc
std 01 97.8 vs 53.6). A model trained on ``features.csv`` has seen whole tracks and must be fed
features of whole tracks; :mod:`music_genre.audio.training_audio` records which kind each model saw.

The computation follows FMA's ``features.py`` (mdeff/fma, 2017, librosa 0.5), reimplemented for
librosa 0.11 (on the same clip, a direct port of FMA's ``features.py`` agrees with it to a
median relative difference of 5.7e-5). With ``fma_compatible`` on (the default) it keeps two
FMA quirks of the recipe:

- FMA called ``chroma_stft`` and the four ``spectral_*`` features without ``sr``, so librosa
  assumed 22,050 Hz whatever the file's rate: their frequency axis (Hz values of centroid,
  bandwidth, rolloff; the octave bands of contrast; the chroma filter bank) is scaled by
  22050 / rate. ``fma_compatible: false`` uses the true rate instead.
- ``rmse`` is librosa 0.5's ``rmse(S=...)``, the root mean square over frequency bins of the
  magnitude spectrogram (librosa >= 0.7 ``rms`` normalises differently, ~45x smaller).

Where it cannot follow FMA exactly (also listed in docs/pipelines/handcrafted.md): MP3s are decoded by libsndfile/mpg123
instead of audioread/ffmpeg; librosa 0.11's CQT (used by chroma_cqt, chroma_cens, tonnetz) is
not bit-identical to 0.5's. To stay close, the STFT and CQT pad with ``pad_mode="reflect"``
(librosa 0.5's default, no longer 0.11's) and the chroma features are told the CQT's 12 bins per
octave (0.5 inferred it, 0.11 would assume 36).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from music_genre.audio.decode import load_audio
from music_genre.audio.spectrograms import STUDY_SETTINGS, log_mel_spectrogram
from music_genre.infra import numba_cache

# Rows per feature in FMA's layout (sorted by name, as FMA sorts its columns).
FEATURE_SIZES: dict[str, int] = {
    "chroma_cens": 12,
    "chroma_cqt": 12,
    "chroma_stft": 12,
    "mfcc": 20,
    "rmse": 1,
    "spectral_bandwidth": 1,
    "spectral_centroid": 1,
    "spectral_contrast": 7,  # 6 bands + the residual band above them
    "spectral_rolloff": 1,
    "tonnetz": 6,
    "zcr": 1,
}
STATISTICS: tuple[str, ...] = ("kurtosis", "max", "mean", "median", "min", "skew", "std")
COLUMN_LEVELS: tuple[str, str, str] = ("feature", "statistics", "number")
N_FEATURES = sum(FEATURE_SIZES.values()) * len(STATISTICS)  # 518

# FMA's extraction settings (features.py). Only what does not change the column layout is
# configurable; conf/base/parameters/handcrafted.yml holds the same values.
FMA_SETTINGS: dict[str, Any] = {
    "sample_rate": None,  # None: the file's own rate, as FMA (librosa.load(sr=None))
    "duration_s": None,  # None: the whole file, as FMA
    "offset_s": 0.0,
    # A 7-octave CQT from C1 reaches B7 (3,951 Hz), so rates whose Nyquist is below its top
    # filter cannot be analysed; such audio is resampled up to this rate first. FMA's audio is
    # never below 22,050 Hz, so this changes nothing there.
    "min_sample_rate": 22050,
    "n_fft": 2048,
    "hop_length": 512,
    "fma_compatible": True,
}
_FMA_IMPLICIT_SR = 22050  # librosa's default ``sr``, which FMA's calls silently relied on
# Bump when the computation changes, so that rows stored by an older version are recomputed.
RECIPE_VERSION = 1


class FeatureExtractionError(Exception):
    """Audio that decoded but did not yield 518 finite features; the message says why."""


def feature_columns() -> pd.MultiIndex:
    """The 518 columns of FMA's ``features.csv``: (feature, statistics, number), sorted."""
    tuples = [
        (name, statistic, f"{number:02d}")
        for name, size in FEATURE_SIZES.items()
        for statistic in STATISTICS
        for number in range(1, size + 1)
    ]
    return pd.MultiIndex.from_tuples(sorted(tuples), names=list(COLUMN_LEVELS))


def feature_names(columns: pd.MultiIndex | None = None) -> list[str]:
    """Flat names (``"mfcc.mean.01"``) for tools that need strings, such as scikit-learn."""
    return [".".join(column) for column in (feature_columns() if columns is None else columns)]


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """A stable text identity of the settings, stored with each extracted row so that a re-run
    with other settings recomputes instead of mixing incompatible rows."""
    merged = {**FMA_SETTINGS, **{k: settings[k] for k in FMA_SETTINGS if k in settings}}
    return json.dumps({"recipe": f"fma-518 v{RECIPE_VERSION}", **merged}, sort_keys=True)


def summary_statistics(frames: np.ndarray) -> dict[str, np.ndarray]:
    """FMA's 7 statistics of each row of a (rows, frames) array, over frames.

    Skew and kurtosis are scipy's biased estimators (Fisher kurtosis). For a row with no variance
    (silence, a single frame) they are undefined; scipy < 1.9, which FMA used, returned skew 0
    and kurtosis -3 there, and so does this function, so that silent audio stays finite.
    """
    x = np.asarray(frames, dtype=np.float64)
    mean = x.mean(axis=1)
    centred = x - mean[:, None]
    m2 = (centred**2).mean(axis=1)
    m3 = (centred**3).mean(axis=1)
    m4 = (centred**4).mean(axis=1)
    # scipy's own test for "no variance": below float64 resolution relative to the mean.
    flat = m2 <= (np.finfo(np.float64).resolution * np.abs(mean)) ** 2
    safe_m2 = np.where(flat, 1.0, m2)
    return {
        "kurtosis": np.where(flat, -3.0, m4 / safe_m2**2 - 3.0),
        "max": x.max(axis=1),
        "mean": mean,
        "median": np.median(x, axis=1),
        "min": x.min(axis=1),
        "skew": np.where(flat, 0.0, m3 / safe_m2**1.5),
        "std": np.sqrt(m2),
    }


def _frame_features(signal: np.ndarray, sr: int, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The 11 per-frame feature arrays, each (rows, frames), as FMA's features.py computes them."""
    import librosa

    n_fft, hop = int(settings["n_fft"]), int(settings["hop_length"])
    spectral_sr = _FMA_IMPLICIT_SR if settings["fma_compatible"] else sr
    out: dict[str, np.ndarray] = {}
    out["zcr"] = librosa.feature.zero_crossing_rate(signal, frame_length=n_fft, hop_length=hop)

    stft = np.abs(librosa.stft(signal, n_fft=n_fft, hop_length=hop, pad_mode="reflect"))
    # FMA's cqt(tuning=None) estimated the tuning from its own (reflect-padded, librosa 0.5)
    # STFT with these n_fft/hop; estimating it once from the same STFT saves a second one.
    tuning = librosa.estimate_tuning(S=stft, sr=sr, n_fft=n_fft, bins_per_octave=12)
    cqt = np.abs(
        librosa.cqt(
            signal,
            sr=sr,
            hop_length=hop,
            bins_per_octave=12,
            n_bins=7 * 12,
            tuning=tuning,
            pad_mode="reflect",
        )
    )
    # bins_per_octave must be given: librosa 0.5 took it from n_chroma (12), 0.11 defaults to 36,
    # which would read this 12-bins-per-octave CQT as a 36-bins one.
    out["chroma_cqt"] = librosa.feature.chroma_cqt(
        C=cqt, n_chroma=12, n_octaves=7, bins_per_octave=12
    )
    out["chroma_cens"] = librosa.feature.chroma_cens(
        C=cqt, n_chroma=12, n_octaves=7, bins_per_octave=12
    )
    out["tonnetz"] = librosa.feature.tonnetz(chroma=out["chroma_cens"])
    del cqt

    out["chroma_stft"] = librosa.feature.chroma_stft(S=stft**2, sr=spectral_sr, n_chroma=12)
    if settings["fma_compatible"]:
        out["rmse"] = np.sqrt(np.mean(stft**2, axis=0, keepdims=True))  # librosa 0.5 rmse(S=)
    else:
        out["rmse"] = librosa.feature.rms(S=stft, frame_length=n_fft, hop_length=hop)
    out["spectral_centroid"] = librosa.feature.spectral_centroid(S=stft, sr=spectral_sr)
    out["spectral_bandwidth"] = librosa.feature.spectral_bandwidth(S=stft, sr=spectral_sr)
    out["spectral_contrast"] = librosa.feature.spectral_contrast(S=stft, sr=spectral_sr, n_bands=6)
    out["spectral_rolloff"] = librosa.feature.spectral_rolloff(S=stft, sr=spectral_sr)
    mel = librosa.feature.melspectrogram(sr=sr, S=stft**2)
    out["mfcc"] = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20)
    return out


def warm_up_librosa() -> None:
    """Run the project's librosa code paths once on a short clip, tone and silence (silence
    takes other branches in tuning estimation): what :func:`music_genre.infra.numba_cache.prepare`
    compiles under its lock."""
    rate = 22050
    time = np.arange(rate, dtype=np.float32) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * time)).astype(np.float32)
    for signal in (tone, np.zeros_like(tone)):
        compute_features(signal, rate)
        log_mel_spectrogram(signal, STUDY_SETTINGS)


def compute_features(
    signal: np.ndarray, sample_rate: int, settings: Mapping[str, Any] | None = None
) -> pd.Series:
    """The 518 features of one mono signal, as a float32 Series indexed by ``feature_columns()``.

    Raises ``FeatureExtractionError`` when the signal is empty or a value comes out non-finite.
    """
    import librosa

    numba_cache.prepare(warm_up_librosa)

    settings = {**FMA_SETTINGS, **(settings or {})}
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim != 1:
        raise FeatureExtractionError(f"expected a mono signal, got shape {signal.shape}")
    if signal.size == 0:
        raise FeatureExtractionError("empty signal (no samples)")
    if not np.isfinite(signal).all():
        raise FeatureExtractionError("signal holds NaN or infinite samples")
    min_rate = settings.get("min_sample_rate") or 0
    if sample_rate < min_rate:
        signal = librosa.resample(signal, orig_sr=sample_rate, target_sr=int(min_rate))
        sample_rate = int(min_rate)

    with warnings.catch_warnings():
        # librosa warns on silence (empty tuning estimate) and on clips shorter than n_fft;
        # both still give defined values, and non-finite results are caught below.
        warnings.simplefilter("ignore")
        frames = _frame_features(signal, sample_rate, settings)

    computed: dict[tuple[str, str, str], float] = {}
    for name, size in FEATURE_SIZES.items():
        array = frames[name]
        if array.shape[0] != size:
            raise FeatureExtractionError(f"{name}: {array.shape[0]} rows, expected {size}")
        for statistic, per_row in summary_statistics(array).items():
            for number, value in enumerate(per_row, start=1):
                computed[(name, statistic, f"{number:02d}")] = float(value)
    values = pd.Series(computed, dtype=np.float64).reindex(feature_columns())
    bad = values.index[~np.isfinite(values.to_numpy())]
    if len(bad):
        names = sorted({".".join(column[:2]) for column in bad})
        raise FeatureExtractionError(f"non-finite values in {', '.join(names)}")
    return values.astype(np.float32).rename(None)


def extract_features(path: str, settings: Mapping[str, Any] | None = None) -> pd.Series:
    """Decode ``path`` (mono, rate and window per ``settings``) and compute its 518 features.

    Decoding errors propagate (``FileNotFoundError``, ``audio.AudioDecodeError``); feature
    problems raise ``FeatureExtractionError``.
    """
    settings = {**FMA_SETTINGS, **(settings or {})}
    signal, sample_rate = load_audio(
        path,
        sample_rate=settings["sample_rate"],
        mono=True,
        duration_s=settings["duration_s"],
        offset_s=settings["offset_s"] or 0.0,
    )
    return compute_features(signal, sample_rate, settings)
