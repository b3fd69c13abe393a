"""Schemas of the data-preparation pipelines: ingestion, spectrogram, augmentation."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    model_validator,
)

from music_genre.audio.augment import MASK_VALUES
from music_genre.audio.spectrograms import STORAGE_DTYPES

# --- ingestion ------------------------------------------------------------------------------
from .base import (
    NonNegativeInt,
    PadMode,
    PositiveFloat,
    PositiveInt,
    Seed,
    Workers,
    _Schema,
)


class SplitFractions(_Schema):
    """Fractions of a folder collection's seeded split; they must sum to 1."""

    training: Annotated[float, Field(gt=0, lt=1)]
    """Fraction of the tracks in the training split."""
    validation: Annotated[float, Field(gt=0, lt=1)]
    """Fraction of the tracks in the validation split."""
    test: Annotated[float, Field(gt=0, lt=1)]
    """Fraction of the tracks in the test split."""

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        total = self.training + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"the three fractions must sum to 1, they sum to {total:g}")
        return self


class IngestionParams(_Schema):
    """``ingestion``: where the audio comes from, how it is probed and split."""

    source: Literal["fma", "folder"]
    """``fma``: FMA's metadata and audio layout; ``folder``: a ``<root>/<genre>/<file>``
    collection."""
    fma_root: str
    """Folder (or fsspec URL) holding ``fma_metadata/`` and ``fma_<subset>/``."""
    subset: Literal["small", "medium", "large"]
    """FMA's subset: small, medium or large."""
    folder: str | None = None
    """Root of a folder-per-genre collection (required with ``source: folder``); a path or fsspec
    URL."""
    min_duration_s: Annotated[float, Field(ge=0)]
    """Shorter clips are reported and skipped; lower it to keep them (the spectrogram pipeline pads
    them)."""
    workers: Workers = None
    """Parallel decoders: null or -1 = all cores."""
    reuse_probes: bool = True
    """Reuse the earlier probe of files whose size and modification time (URL: ETag or version) are
    unchanged; false decodes every file again."""
    split_fractions: SplitFractions
    """Training/validation/test fractions of a folder collection's seeded split (FMA brings its own
    split)."""
    split_seed: Seed
    """Seed of that split."""
    known_bad_tracks: dict[int, str] = {}
    """Track id -> reason for files known to be unusable; they are reported and skipped."""
    # folder collections only: a published split (CSV path,split) and/or groups kept whole
    split_file: str | None = None
    """Folder collections: a CSV (``path``, ``split``) with a published split, used as is."""
    metadata_file: str | None = None
    """Folder collections: a CSV (``path``, ``<group_by>``) giving each file's group; without it the
    file's tags are read."""
    group_by: Annotated[str, Field(min_length=1)] | None = None
    """Folder collections: keep every group (e.g. ``artist``) on one side of the seeded split."""

    @model_validator(mode="after")
    def _folder_when_needed(self) -> IngestionParams:
        if self.source == "folder" and not self.folder:
            raise ValueError(
                "source=folder needs ingestion.folder: a <root>/<genre>/<file> collection"
            )
        return self


# --- spectrogram ----------------------------------------------------------------------------
class SpectrogramParams(_Schema):
    """``spectrogram``: the study's log-mel spectrogram and its store."""

    sample_rate: PositiveInt
    """Audio is resampled to this rate (Hz)."""
    duration_s: PositiveFloat
    """The window cut from the start of each clip (s)."""
    n_fft: PositiveInt
    """FFT size of the mel spectrogram."""
    hop_length: PositiveInt
    """Hop between frames (samples)."""
    n_mels: PositiveInt
    """Mel bands."""
    fmax: PositiveFloat
    """Highest mel frequency (Hz); at most half the sample rate."""
    pad_mode: PadMode = "repeat"
    """Clips shorter than the window are looped (``repeat``) or padded with silence (``zeros``)."""
    storage_dtype: Literal[STORAGE_DTYPES] = "float16"  # type: ignore[valid-type]
    """dtype of the stored spectrograms: float16 halves the store (relative error < 2^-11), float32
    is exact."""
    workers: Workers = None
    """Worker processes: null or -1 = all cores."""
    write_batch_size: PositiveInt = 32
    """Spectrograms held in memory before they are written."""

    @model_validator(mode="after")
    def _fmax_below_nyquist(self) -> SpectrogramParams:
        if self.fmax > self.sample_rate / 2:
            raise ValueError(
                f"fmax={self.fmax:g} is above the Nyquist frequency {self.sample_rate / 2:g} Hz "
                f"of sample_rate={self.sample_rate}: lower fmax or raise sample_rate"
            )
        return self


# --- augmentation ---------------------------------------------------------------------------
class AugmentationParams(_Schema):
    """``augmentation``: the frequency- and time-masked copies of every training spectrogram."""

    freq_mask_max_width: NonNegativeInt
    """Widest frequency mask (mel bins); widths are drawn uniformly from [0, this]."""
    time_mask_max_width: NonNegativeInt
    """Widest time mask (frames); widths are drawn uniformly from [0, this]."""
    mask_value: Literal[MASK_VALUES]  # type: ignore[valid-type]
    """What a mask writes: ``image_zero`` (0 on the study's inverted image, i.e. the maximum),
    ``min`` (silence) or ``mean``."""
    seed: Seed
    """Each copy is seeded by (seed, its key): reproducible in any order."""
    write_batch_size: PositiveInt = 32
    """Masked copies held in memory before they are written."""
