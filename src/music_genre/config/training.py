# Over 400 lines: the schemas of the three training pipelines and fusion (with the CNN variants), one section each.
"""Schemas of the training pipelines: handcrafted, cnn, transfer, fusion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)

from music_genre.models.backbones import BACKBONES, INTERPOLATIONS

# --- handcrafted ----------------------------------------------------------------------------
from .base import (
    Fraction,
    LogModels,
    NonNegativeInt,
    PadMode,
    PositiveFloat,
    PositiveInt,
    Seed,
    Workers,
    _Schema,
)


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

    @property
    def sources(self) -> list[str]:
        """``source`` as a list: the saved model's source first, then the comparison sources."""
        return self.source.split("+") if isinstance(self.source, str) else list(self.source)


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


# The scikit-learn estimators of transfer.search.ESTIMATORS (a test keeps the two in step).
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
