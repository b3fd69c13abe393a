"""Typed schemas of the pipelines' parameters (pydantic v2): one model per pipeline, the types,
ranges and allowed values of ``conf/<env>/parameters/<pipeline>.yml`` in one place.

``validate_parameters`` checks every section that has a schema; :class:`ParameterValidationHook`
runs it before any node of ``kedro run``. Unknown keys are errors (``extra="forbid"``), so a typo
such as ``transfer.cv_fold`` fails instead of being silently ignored. Each problem is reported as
its full key path, the value given and what is allowed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import click
from kedro.framework.hooks import hook_impl
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from music_genre.audio.augment import MASK_VALUES
from music_genre.audio.spectrograms import PAD_MODES, STORAGE_DTYPES
from music_genre.models.backbones import BACKBONES, INTERPOLATIONS


class _Schema(BaseModel):
    # strict: YAML's `true` is not the integer 1 and "5" is not 5; floats still accept integers.
    # use_attribute_docstrings: a field's docstring is its description, from which
    # docs/gen_config_reference.py writes the configuration reference.
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True
    )


def _workers(value: int | None) -> int | None:
    """null or -1 (all cores), or a positive integer."""
    if value is not None and value != -1 and value < 1:
        raise ValueError("must be null (all cores), -1 (all cores) or a positive integer")
    return value


PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Seed = Annotated[int, Field(ge=0)]
Workers = Annotated[int | None, AfterValidator(_workers)]
Fraction = Annotated[float, Field(gt=0, le=1)]
PadMode = Literal[PAD_MODES]  # type: ignore[valid-type]
# whose model artefacts a pipeline logs in MLflow (music_genre.datasets.mlflow_runs)
LogModels = Literal["selected", "all", "none"]


# --- ingestion ------------------------------------------------------------------------------
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


# --- handcrafted ----------------------------------------------------------------------------
class FeatureExtractionParams(_Schema):
    """``handcrafted.extraction``: FMA's 518 features computed from the audio (``source: extract``,
    and the prediction command)."""

    sample_rate: PositiveInt | None = None
    """null: the file's own rate, as FMA; a number resamples to it."""
    duration_s: PositiveFloat | None = None
    """null: the whole file, as FMA; a number cuts the clip (s)."""
    offset_s: Annotated[float, Field(ge=0)] = 0.0
    """Start of the clip in the file (s)."""
    min_sample_rate: PositiveInt
    """Lower rates are resampled up to this (the 7-octave CQT needs it)."""
    n_fft: PositiveInt
    """FFT size."""
    hop_length: PositiveInt
    """Hop between frames (samples)."""
    fma_compatible: bool = True
    """Keep FMA's quirks (spectral features and chroma_stft as if at 22,050 Hz, librosa 0.5's rmse)
    so extracted features match ``features.csv``; false: textbook values."""
    workers: Workers = None
    """Parallel processes: null or -1 = all cores."""
    save_every: PositiveInt = 16
    """Tracks per write to the feature store (an interrupted run keeps them)."""


class MlpSweepParams(_Schema):
    """``handcrafted.mlp``: the Keras MLP sweep of the study's Tables 1-2."""

    hidden_units: Annotated[
        list[Annotated[list[PositiveInt], Field(min_length=1)]], Field(min_length=1)
    ]
    """One MLP per entry: the sizes of its hidden layers."""
    learning_rate: PositiveFloat
    """Adam's learning rate."""
    batch_size: PositiveInt
    """Training batch size."""
    max_epochs: PositiveInt
    """At most this many epochs (early stopping usually ends sooner)."""
    patience: NonNegativeInt
    """Early stopping on the validation loss: epochs without improvement."""
    l2: Annotated[float, Field(ge=0)]
    """L2 penalty on every kernel (part of the reported loss)."""
    seed: Seed
    """Seed of the weights and shuffling."""


def _handcrafted_source(value: Any) -> Any:
    """One source, or several: a YAML list, or for --params (which splits on commas) joined
    by "+" (``fma_csv+extract``); the first is the saved model, the others comparison rows."""
    parts = value.split("+") if isinstance(value, str) else value
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
        raise ValueError("Input should be 'fma_csv' or 'extract', or a list of them")
    bad = [p for p in parts if p not in ("fma_csv", "extract")]
    if bad:
        raise ValueError(
            "Input should be 'fma_csv' or 'extract' (both: [fma_csv, extract], or "
            "fma_csv+extract on the command line)"
        )
    if len(set(parts)) != len(parts):
        raise ValueError("lists a source twice")
    return value


class HandcraftedParams(_Schema):
    """``handcrafted``: FMA's handcrafted features and the MLP sweep."""

    source: Annotated[str | list[str], AfterValidator(_handcrafted_source)]
    """``fma_csv``: FMA's precomputed ``features.csv`` (whole tracks, the study); ``extract``:
    computed from the audio (the clips); ``[fma_csv, extract]`` (``fma_csv+extract`` on the
    command line): the first trains the saved model, the others add comparison rows."""
    extraction: FeatureExtractionParams
    """Feature extraction from the audio."""
    mlp: MlpSweepParams
    """The MLP sweep."""
    log_models: LogModels = "selected"
    """Model artefacts logged in MLflow: ``selected`` (only the chosen configuration's run, the
    one registered; the others keep params, metrics, curves, plots), ``all`` or ``none``."""


# --- cnn ------------------------------------------------------------------------------------
class ArchitectureParams(_Schema):
    """``cnn.architecture``: Kostrzewa et al.'s CNN, 4 x [Conv2D k x k -> BatchNorm ->
    MaxPool(2)]."""

    filters: Annotated[list[PositiveInt], Field(min_length=4, max_length=4)]
    """Filters of the four convolution layers."""
    kernel_size: PositiveInt
    """Kernel size (k x k) of every convolution."""
    dropout: Annotated[float, Field(ge=0, lt=1)]
    """Dropout before the softmax layer."""


class EarlyStoppingParams(_Schema):
    """keras.callbacks.EarlyStopping's arguments."""

    monitor: str = "val_loss"
    """Quantity watched."""
    patience: NonNegativeInt = 0
    """Epochs without improvement before training stops."""
    restore_best_weights: bool = False
    """Restore the weights of the best epoch."""
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    """Smallest change counted as an improvement."""
    mode: Literal["auto", "min", "max"] = "auto"
    """Whether the quantity should fall (``min``), rise (``max``) or either (``auto``)."""
    baseline: float | None = None
    """Stop unless the quantity beats this value."""
    start_from_epoch: NonNegativeInt = 0
    """Epochs before early stopping starts watching."""
    verbose: Literal[0, 1] = 0
    """1: log when early stopping acts."""


class CnnTrainingParams(_Schema):
    """``cnn.training``: Adam training of the untuned variants."""

    learning_rate: PositiveFloat
    """Adam's learning rate (tuned variants use the one Hyperband found)."""
    batch_size: PositiveInt
    """Training batch size."""
    epochs: PositiveInt
    """At most this many epochs (early stopping usually ends sooner)."""
    early_stopping: EarlyStoppingParams
    """``keras.callbacks.EarlyStopping``'s arguments."""


class IntRange(_Schema):
    """An integer range of the Hyperband search space."""

    min: PositiveInt
    """Smallest value."""
    max: PositiveInt
    """Largest value."""
    step: PositiveInt = 1
    """Step between values."""

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.min > self.max:
            raise ValueError(f"needs min <= max, got min={self.min}, max={self.max}")
        return self


class SearchSpaceParams(_Schema):
    """``cnn.tuning.search_space``: what keras-tuner's Hyperband searches."""

    kernel_size: IntRange
    """One kernel size for all four convolution layers."""
    filters: IntRange
    """Filters per convolution layer."""
    dropout: Annotated[list[Annotated[float, Field(ge=0, lt=1)]], Field(min_length=1)]
    """Dropout values to try."""
    learning_rate: Annotated[list[PositiveFloat], Field(min_length=1)]
    """Learning rates to try."""


class TuningParams(_Schema):
    """``cnn.tuning``: keras-tuner Hyperband for the tuned variants."""

    objective: str
    """What Hyperband maximises (e.g. ``val_accuracy``)."""
    max_epochs: PositiveInt
    """Hyperband's largest number of epochs per trial."""
    factor: Annotated[int, Field(ge=2)]
    """Hyperband's reduction factor."""
    hyperband_iterations: PositiveInt
    """Times the whole Hyperband algorithm runs."""
    early_stopping: bool = True
    """Use the ``training.early_stopping`` callback inside every trial too."""
    directory: str
    """Where keras-tuner keeps its trials (one folder per variant and search fingerprint; an
    interrupted search resumes)."""
    search_space: SearchSpaceParams
    """The search space."""


class EvaluationParams(_Schema):
    """``cnn.evaluation``: evaluating the trained variants."""

    batch_size: PositiveInt
    """Batch size when evaluating."""


class TimingParams(_Schema):
    """``cnn.timing``: the study's inference-time measure and the batched throughput."""

    seed: Seed
    """Seed of the random timing input."""
    warmup: NonNegativeInt = 1
    """Untimed calls first (the first one builds the predict function)."""
    repeats: PositiveInt
    """``inference_seconds`` = mean of this many single predictions of the same input (the study:
    10)."""
    throughput_clips: PositiveInt
    """Clips predicted batched for ``clips_per_second``."""
    batch_size: PositiveInt
    """Batch size of that throughput measure."""


class TrainingOverrides(_Schema):
    """``cnn.variants.<name>.training``: the ``cnn.training`` keys one variant changes."""

    learning_rate: PositiveFloat | None = None
    """Adam's learning rate (null: ``cnn.training.learning_rate``)."""
    batch_size: PositiveInt | None = None
    """Training batch size (null: ``cnn.training.batch_size``)."""
    epochs: PositiveInt | None = None
    """At most this many epochs (null: ``cnn.training.epochs``)."""


VariantName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class CnnVariantParams(_Schema):
    """One entry of ``cnn.variants``: a CNN the pipeline trains, evaluates and reports (its
    name is the namespace of its nodes and datasets, e.g. ``<name>.cnn_model``)."""

    augmented: bool = False
    """Train on the training tracks and their two masked copies (``augmentation_mode``)."""
    tuned: bool = False
    """Search the architecture and learning rate with Hyperband (``cnn.tuning``) first."""
    report_model: Annotated[str, Field(min_length=1)] | None = None
    """The ``model`` column of the comparison with the study (the study's rows: ``kostrzewa``,
    ``tuned``); null: the variant's name. Its ``variant`` column is ``augmented`` or ``plain``."""
    architecture: ArchitectureParams | None = None
    """This variant's network instead of ``cnn.architecture`` (untuned variants only)."""
    training: TrainingOverrides | None = None
    """This variant's changes to ``cnn.training`` (e.g. fewer ``epochs``)."""

    @model_validator(mode="after")
    def _architecture_untuned(self) -> CnnVariantParams:
        if self.tuned and self.architecture is not None:
            raise ValueError("a tuned variant takes its architecture from Hyperband: drop one")
        return self


class CnnParams(_Schema):
    """``cnn``: the CNN variants (the study's four of Tables 3-6 in ``variants``)."""

    seed: Seed
    """Seed of weights, shuffling and Hyperband's draws (both searches get the same one)."""
    log_models: LogModels = "selected"
    """Model artefacts logged in MLflow: ``selected`` (only the chosen configuration's run, the
    one registered; the others keep params, metrics, curves, plots), ``all`` or ``none``."""
    augmentation_mode: Literal["materialized", "on_the_fly"] = "materialized"
    """``materialized``: train on the augmentation pipeline's stored copies (the study);
    ``on_the_fly``: draw new masks every epoch."""
    quantize: bool = True
    """Round the study image to integers, as the study's 8-bit PNGs were."""
    verbose: Literal[0, 1, 2] = 2
    """Keras: 0 silent, 1 progress bar, 2 one log line per epoch."""
    batch_norm_momentum: Annotated[float, Field(ge=0, lt=1)]
    """BatchNormalization's moving-average momentum (Keras' default 0.99)."""
    architecture: ArchitectureParams
    """The network."""
    training: CnnTrainingParams
    """Training of the untuned variants."""
    tuning: TuningParams
    """Hyperband search of the tuned variants."""
    evaluation: EvaluationParams
    """Evaluation."""
    timing: TimingParams
    """Inference timing."""
    variants: Annotated[dict[VariantName, CnnVariantParams], Field(min_length=1)]
    """The variants trained, in the order of ``cnn_results``: name -> settings. One entry adds
    a variant: its nodes, catalog entries (dataset factories), results row and MLflow run."""

    def for_variant(self, name: str) -> CnnParams:
        """These settings with variant ``name``'s own ``architecture`` and ``training``."""
        if name not in self.variants:
            raise ValueError(
                f"Unknown CNN variant {name!r}: cnn.variants has {list(self.variants)}"
            )
        variant = self.variants[name]
        update: dict[str, Any] = {}
        if variant.architecture is not None:
            update["architecture"] = variant.architecture
        if variant.training is not None:
            changes = variant.training.model_dump(exclude_none=True)
            update["training"] = self.training.model_copy(update=changes)
        return self.model_copy(update=update) if update else self


# --- transfer -------------------------------------------------------------------------------
def _known_backbone(name: str) -> str:
    """one of music_genre.models.backbones.BACKBONES."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone, use one of {sorted(BACKBONES)}")
    return name


Backbone = Annotated[str, AfterValidator(_known_backbone)]
_WEIGHTS_HELP = (
    "use imagenet, a backbone's own weights (musicnn: msd or mtt), a path to a local .h5 "
    "weights file, null (random initialisation), or a mapping backbone -> one of those"
)


def _weights(value: Any) -> Any:
    """a name, a path, null, or a mapping backbone -> one of those."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in BACKBONES)
        if unknown:
            raise ValueError(f"unknown backbone(s) {unknown}, use some of {sorted(BACKBONES)}")
        if all(v is None or isinstance(v, str) for v in value.values()):
            return dict(value)
    raise ValueError(_WEIGHTS_HELP)


Weights = Annotated[Any, AfterValidator(_weights)]
PcaVariances = Annotated[list[Fraction], Field(min_length=1)]


class ImageParams(_Schema):
    """``transfer.image``: the spectrogram image given to VGG16/ResNet50."""

    interpolation: Literal[INTERPOLATIONS] = "bilinear"  # type: ignore[valid-type]
    """How the spectrogram image is resized to 224 x 224."""


class AudioWindowParams(_Schema):
    """``transfer.audio``: the audio window read by audio backbones (musicnn)."""

    duration_s: PositiveFloat = 29.70
    """The window read from the start of each track (s)."""
    pad_mode: PadMode = "repeat"
    """Clips shorter than the window are looped (``repeat``) or padded with silence (``zeros``)."""
    workers: Workers = None  # decoding processes
    """Decoding processes: null or -1 = all cores."""


class ExperimentParams(_Schema):
    """One entry of ``transfer.experiments``: a backbone, a cut level and PCA variances."""

    backbone: Backbone
    """``vgg16``, ``resnet50`` or ``musicnn`` (``music_genre.models.backbones.BACKBONES``)."""
    cut_level: Annotated[str, Field(min_length=1)]  # a layer name; checked when the model loads
    """A layer name of the backbone; checked when the model loads."""
    pca_variances: PcaVariances | None = None
    """Variances PCA keeps, one configuration each; null: ``transfer.pca_variances``."""


class ClassifierParams(_Schema):
    """One classifier of ``transfer.classifiers``: fixed arguments and a grid."""

    fixed: dict[str, Any] = {}
    """Keyword arguments of the scikit-learn estimator."""
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    """Grid searched by ``GridSearchCV``: argument -> values."""


# The scikit-learn estimators of transfer.nodes.ESTIMATORS (a test keeps the two in step).
ClassifierName = Literal["svm_linear", "svm_rbf", "mlp"]


class TransferParams(_Schema):
    """``transfer``: backbone features -> scaling -> PCA -> SVM / MLP, grid-searched CV."""

    weights: Weights
    """``imagenet``, a backbone's own weights (musicnn: ``msd`` or ``mtt``), a local ``.h5`` path,
    null (random, seeded), or a mapping backbone -> one of those."""
    log_models: LogModels = "selected"
    """Model artefacts logged in MLflow: ``selected`` (only the chosen configuration's run, the
    one registered; the others keep params, metrics, curves, plots), ``all`` or ``none``."""
    random_seed: Seed | None = None
    """Seed of random weights, PCA, LinearSVC and the MLP."""
    image: ImageParams = ImageParams()
    """The spectrogram image (VGG16/ResNet50)."""
    audio: AudioWindowParams = AudioWindowParams()
    """The audio window (musicnn)."""
    batch_size: PositiveInt = 16
    """Items per forward pass (on Dask: one task each); written per batch."""
    timing_runs: PositiveInt = 10
    """``extract_ms_per_image`` = mean of this many single-item runs (Table 13)."""
    pca_variances: PcaVariances = [0.99, 0.95, 0.90]
    """Default PCA variances for an experiment that lists none."""
    experiments: Annotated[list[ExperimentParams], Field(min_length=1)]
    """(backbone, cut level, PCA variances) to evaluate."""
    cv_folds: Annotated[int, Field(ge=2)]
    """Cross-validation folds of the grid search on training + validation."""
    n_jobs: Workers = 1
    """GridSearchCV worker processes (-1: all cores; ignored on Dask)."""
    blas_threads: PositiveInt | None = None
    """BLAS threads per fit (null: the library's default)."""
    cache_folds: bool = True
    """Cache each fold's fitted scaler + PCA while grid-searching one cut level (costs disk)."""
    classifiers: Annotated[dict[ClassifierName, ClassifierParams], Field(min_length=1)]
    """The classifiers (``svm_linear``, ``svm_rbf``, ``mlp``) and their grids."""


# --- reporting, serving ---------------------------------------------------------------------
class ReportingParams(_Schema):
    """``reporting``: the summary report."""

    dataset_kind: Annotated[str, Field(min_length=1)]
    """Printed in the summary header so demo numbers are never mistaken for FMA results."""


def _absolute_path(value: str) -> str:
    if not os.path.isabs(value):
        raise ValueError("must be an absolute path (the server's working folder is no root)")
    return value


class ServingParams(_Schema):
    """``serving``: the model logged for serving and the prediction command's limits."""

    model: Literal["best", "handcrafted", "cnn", "transfer", "fusion"] = "best"
    """The model served: ``best`` (best held-out accuracy), ``handcrafted``, ``cnn``, ``transfer``
    or ``fusion``."""
    min_seconds: PositiveFloat
    """Shorter files get a per-file error; shorter than the window is padded as in training."""
    max_windows: PositiveInt
    """At most this many 29.7-s windows are averaged for a long file."""
    allowed_roots: list[Annotated[str, AfterValidator(_absolute_path)]] = []
    """Absolute folders whose regular files a served-model request may name in a ``path``
    column (symlinks resolved, and required to stay under one); empty: paths refused."""
    max_bytes: PositiveInt = 50 * 1024 * 1024
    """Largest file a served-model request may send (bytes); larger ones get a per-row error."""
    max_files: PositiveInt = 16
    """Most rows (files) in one served-model request; more: the request is refused (HTTP 400)."""
    max_seconds: PositiveFloat = 600.0
    """Longest decoded audio per file of a served-model request (s); longer: a per-row error."""


def _existing_folder(value: str | None) -> str | None:
    """A local folder must exist (a URL is checked when the run lists it)."""
    from music_genre.infra.location import is_url, local_path

    if value is not None and not is_url(value) and not os.path.isdir(local_path(value)):
        raise ValueError(
            "no such folder: set inference.folder to the folder (or fsspec URL) of your music, "
            'e.g. --params "inference.folder=/path/to/music"'
        )
    return value


class InferenceParams(_Schema):
    """``inference``: batch prediction over a music library (``kedro run --pipeline=inference``;
    ``genre-predict DIR --output FILE`` takes the same settings as options)."""

    folder: Annotated[str | None, AfterValidator(_existing_folder)] = None
    """The library: a folder (searched recursively for mp3, wav, flac, ogg, au) or an fsspec URL;
    required by the inference pipeline."""
    model: Literal["best", "handcrafted", "cnn", "transfer", "fusion"] = "best"
    """``best`` (best held-out accuracy, genre-predict's default), ``handcrafted``, ``cnn``,
    ``transfer`` or ``fusion``."""
    runtime: Literal["auto", "keras"] = "auto"
    """``auto``: the ONNX exports where valid; ``keras``: the Keras models (TensorFlow)."""
    run_id: Annotated[str, Field(min_length=1)] | None = None
    """An MLflow run id: use the genre predictor the serving pipeline logged in it."""
    min_seconds: PositiveFloat = 3.0
    """Shorter files get a per-file error."""
    max_windows: PositiveInt = 10
    """At most this many 29.7-s windows are averaged for a long file."""
    workers: Workers = None
    """Decoding and front-end processes: null or -1 = all cores."""
    chunk_size: PositiveInt = 32
    """Files per network call and per atomic rewrite of the table (an interruption loses at most
    one chunk)."""
    progress: bool = True
    """A progress bar (files) on stderr."""


# --- fusion ---------------------------------------------------------------------------------
class FusionParams(_Schema):
    """``fusion``: combining the best handcrafted, CNN and transfer models."""

    method: Literal["auto", "late_fusion", "stacking"] = "auto"
    """``late_fusion`` (weighted mean), ``stacking`` (logistic regression) or ``auto`` (the one with
    the higher cross-validated validation accuracy)."""
    weight_step: Annotated[float, Field(gt=0, le=0.5)] = 0.1
    """Step of the late-fusion weights on the simplex."""
    stacking_c: PositiveFloat = 1.0
    """Inverse regularisation strength of the stacking logistic regression."""
    cv_folds: Annotated[int, Field(ge=2)] = 5
    """Folds over the validation tracks for the selection score."""
    seed: Seed = 42
    """Seed of those folds."""
    log_models: LogModels = "selected"
    """Model artefacts logged in MLflow: ``selected`` (only the chosen configuration's run, the
    one registered; the others keep params, metrics, curves, plots), ``all`` or ``none``."""


# --- runtime: where the parallel work runs (music_genre.infra.parallel) ---------------------------
class RuntimeParams(_Schema):
    """``runtime``: where the parallel work runs (``music_genre.infra.parallel``), and GPU precision."""

    executor: Literal["local", "dask"] = "local"
    """``local``: process pools on this machine; ``dask``: a Dask cluster."""
    # dask: an existing scheduler (tcp://host:8786), or null for a LocalCluster of the run
    address: Annotated[str, Field(pattern=r"^(tcp|tls|ws|wss)://.+")] | None = None
    """Dask only: an existing scheduler (``tcp://host:8786``), or null for a LocalCluster the run
    starts and stops."""
    n_workers: PositiveInt | None = None  # LocalCluster only (null: one per core)
    """LocalCluster worker processes (null: one per core)."""
    threads_per_worker: PositiveInt = 1  # LocalCluster only
    """LocalCluster threads per worker process."""
    dashboard: str | None = ":8787"  # LocalCluster's dashboard address; null: none
    """LocalCluster dashboard address (the URL is logged); null: none."""
    mixed_precision: bool = False  # float16 compute on a GPU; refused (warning) on a CPU
    """Keras ``mixed_float16`` on a GPU; refused with a warning on a CPU."""

    @model_validator(mode="after")
    def _address_needs_dask(self) -> RuntimeParams:
        if self.address and self.executor != "dask":
            raise ValueError(
                f"address={self.address!r} is only used by executor=dask: "
                "set runtime.executor=dask or runtime.address=null"
            )
        return self


# One schema per pipeline, under the pipeline's parameter section.
SCHEMAS: dict[str, type[_Schema]] = {
    "ingestion": IngestionParams,
    "spectrogram": SpectrogramParams,
    "augmentation": AugmentationParams,
    "handcrafted": HandcraftedParams,
    "cnn": CnnParams,
    "transfer": TransferParams,
    "reporting": ReportingParams,
    "serving": ServingParams,
    "inference": InferenceParams,
    "fusion": FusionParams,
    "runtime": RuntimeParams,
}


class ParameterError(ValueError):
    """The parameters break their schema; the message lists every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "Invalid parameters (conf/<env>/parameters/*.yml or --params):\n  "
            + "\n  ".join(problems)
        )


def _key_path(section: str, loc: tuple[str | int, ...]) -> str:
    path = section
    for part in loc:
        if part == "[key]":  # pydantic's marker for a dict key that failed validation
            continue
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _allowed_keys(schema: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The keys the model at ``loc`` accepts (for "did you mean" on unknown keys)."""
    model: Any = schema
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        annotation = getattr(field, "annotation", None)
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    return list(model.model_fields) if model is not None else []


def _describe(section: str, schema: type[BaseModel], error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(schema, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"{_key_path(section, loc)}={error['input']!r}: unknown key{hint}; "
            f"allowed keys: {', '.join(allowed)}"
        )
    if error["type"] == "missing":
        return f"{_key_path(section, loc)}: missing (required)"
    message = error["msg"].removeprefix("Value error, ")
    if isinstance(error["input"], Mapping):  # a rule across keys: the message names them
        return f"{_key_path(section, loc)}: {message}"
    return f"{_key_path(section, loc)}={error['input']!r}: {message}"


def validate_section(section: str, values: Any) -> BaseModel:
    """One pipeline's parameters as its typed model; raises ParameterError naming every problem."""
    schema = SCHEMAS[section]
    try:
        return schema.model_validate(values)
    except ValidationError as exc:
        raise ParameterError([_describe(section, schema, e) for e in exc.errors()]) from None


def validate_parameters(parameters: Mapping[str, Any]) -> dict[str, BaseModel]:
    """Validate every section of ``parameters`` that has a schema (all problems at once)."""
    problems: list[str] = []
    models: dict[str, BaseModel] = {}
    for section in SCHEMAS:
        if section not in parameters:
            continue
        try:
            models[section] = validate_section(section, parameters[section])
        except ParameterError as exc:
            problems += exc.problems
    if problems:
        raise ParameterError(problems)
    return models


class InvalidParametersError(click.ClickException):
    """Shown by the ``kedro`` command as ``Error: <message>`` with exit code 1, without a
    traceback: the cause is the user's configuration, not the code."""


# The parameters of the Kedro context of this process (ParameterValidationHook records them):
# what the pipelines are built from (the CNN's variants, see project_parameters).
_CONTEXT_PARAMETERS: dict[str, Any] = {}


def project_parameters() -> dict[str, Any]:
    """The parameters the pipelines are built from (``cnn.variants`` decides the CNN's nodes).

    Kedro builds the pipelines after the context: ``kedro run``, ``kedro viz``, ``genre-predict``
    and ``%load_ext kedro.ipython`` get that context's parameters (its env, conf source and
    ``--params``), recorded by :class:`ParameterValidationHook`. Without a context (``kedro
    registry list``, a test calling ``create_pipeline()``): the project's ``conf/`` under the
    working folder, loaded as ``kedro run`` would (env ``KEDRO_ENV``, else the default)."""
    if _CONTEXT_PARAMETERS:
        return dict(_CONTEXT_PARAMETERS)
    from kedro.utils import find_kedro_project

    from music_genre import settings  # the project's loader settings, configured or not

    root = find_kedro_project(Path.cwd()) or Path.cwd()
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(Path(root) / getattr(settings, "CONF_SOURCE", "conf")),
        env=os.environ.get("KEDRO_ENV"),
        **settings.CONFIG_LOADER_ARGS,
    )
    return dict(loader["parameters"])


class ParameterValidationHook:
    """Validates the parameters (conf files merged with ``--params``) as soon as the Kedro
    context exists: before any node of ``kedro run`` and before the pipelines, TensorFlow or
    MLflow are even loaded, so a bad value fails within seconds. Also guards everything else
    that builds a context (``genre-predict``, ``%load_ext kedro.ipython``), and records the
    parameters for the pipelines built next (:func:`project_parameters`).

    ``tryfirst``: before the plugins' hooks (kedro-mlflow connects to its store here)."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        parameters = context.config_loader["parameters"]
        try:
            validate_parameters(parameters)
        except ParameterError as exc:
            raise InvalidParametersError(str(exc)) from None
        _CONTEXT_PARAMETERS.clear()
        _CONTEXT_PARAMETERS.update(parameters)
