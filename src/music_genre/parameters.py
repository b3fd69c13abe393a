"""Typed schemas of the pipelines' parameters (pydantic v2): one model per pipeline, the types,
ranges and allowed values of ``conf/<env>/parameters/<pipeline>.yml`` in one place.

``validate_parameters`` checks every section that has a schema; :class:`ParameterValidationHook`
runs it before any node of ``kedro run``. Unknown keys are errors (``extra="forbid"``), so a typo
such as ``transfer.cv_fold`` fails instead of being silently ignored. Each problem is reported as
its full key path, the value given and what is allowed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
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

from music_genre.augment import MASK_VALUES
from music_genre.backbones import BACKBONES, INTERPOLATIONS
from music_genre.spectrograms import PAD_MODES, STORAGE_DTYPES


class _Schema(BaseModel):
    # strict: YAML's `true` is not the integer 1 and "5" is not 5; floats still accept integers.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _workers(value: int | None) -> int | None:
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


# --- ingestion ------------------------------------------------------------------------------
class SplitFractions(_Schema):
    training: Annotated[float, Field(gt=0, lt=1)]
    validation: Annotated[float, Field(gt=0, lt=1)]
    test: Annotated[float, Field(gt=0, lt=1)]

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        total = self.training + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"the three fractions must sum to 1, they sum to {total:g}")
        return self


class IngestionParams(_Schema):
    source: Literal["fma", "folder"]
    fma_root: str
    subset: Literal["small", "medium", "large"]
    folder: str | None = None
    min_duration_s: Annotated[float, Field(ge=0)]
    workers: Workers = None
    reuse_probes: bool = True
    split_fractions: SplitFractions
    split_seed: Seed
    known_bad_tracks: dict[int, str] = {}
    # folder collections only: a published split (CSV path,split) and/or groups kept whole
    split_file: str | None = None
    metadata_file: str | None = None
    group_by: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _folder_when_needed(self) -> IngestionParams:
        if self.source == "folder" and not self.folder:
            raise ValueError(
                "source=folder needs ingestion.folder: a <root>/<genre>/<file> collection"
            )
        return self


# --- spectrogram ----------------------------------------------------------------------------
class SpectrogramParams(_Schema):
    sample_rate: PositiveInt
    duration_s: PositiveFloat
    n_fft: PositiveInt
    hop_length: PositiveInt
    n_mels: PositiveInt
    fmax: PositiveFloat
    pad_mode: PadMode = "repeat"
    storage_dtype: Literal[STORAGE_DTYPES] = "float16"  # type: ignore[valid-type]
    workers: Workers = None
    write_batch_size: PositiveInt = 32

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
    freq_mask_max_width: NonNegativeInt
    time_mask_max_width: NonNegativeInt
    mask_value: Literal[MASK_VALUES]  # type: ignore[valid-type]
    seed: Seed
    write_batch_size: PositiveInt = 32


# --- handcrafted ----------------------------------------------------------------------------
class FeatureExtractionParams(_Schema):
    sample_rate: PositiveInt | None = None
    duration_s: PositiveFloat | None = None
    offset_s: Annotated[float, Field(ge=0)] = 0.0
    min_sample_rate: PositiveInt
    n_fft: PositiveInt
    hop_length: PositiveInt
    fma_compatible: bool = True
    workers: Workers = None
    save_every: PositiveInt = 16


class MlpSweepParams(_Schema):
    hidden_units: Annotated[
        list[Annotated[list[PositiveInt], Field(min_length=1)]], Field(min_length=1)
    ]
    learning_rate: PositiveFloat
    batch_size: PositiveInt
    max_epochs: PositiveInt
    patience: NonNegativeInt
    l2: Annotated[float, Field(ge=0)]
    seed: Seed


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
    # fma_csv | extract | [fma_csv, extract] (= fma_csv+extract): see _handcrafted_source
    source: Annotated[str | list[str], AfterValidator(_handcrafted_source)]
    extraction: FeatureExtractionParams
    mlp: MlpSweepParams


# --- cnn ------------------------------------------------------------------------------------
class ArchitectureParams(_Schema):
    filters: Annotated[list[PositiveInt], Field(min_length=4, max_length=4)]
    kernel_size: PositiveInt
    dropout: Annotated[float, Field(ge=0, lt=1)]


class EarlyStoppingParams(_Schema):
    """keras.callbacks.EarlyStopping's arguments."""

    monitor: str = "val_loss"
    patience: NonNegativeInt = 0
    restore_best_weights: bool = False
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    mode: Literal["auto", "min", "max"] = "auto"
    baseline: float | None = None
    start_from_epoch: NonNegativeInt = 0
    verbose: Literal[0, 1] = 0


class CnnTrainingParams(_Schema):
    learning_rate: PositiveFloat
    batch_size: PositiveInt
    epochs: PositiveInt
    early_stopping: EarlyStoppingParams


class IntRange(_Schema):
    min: PositiveInt
    max: PositiveInt
    step: PositiveInt = 1

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.min > self.max:
            raise ValueError(f"needs min <= max, got min={self.min}, max={self.max}")
        return self


class SearchSpaceParams(_Schema):
    kernel_size: IntRange
    filters: IntRange
    dropout: Annotated[list[Annotated[float, Field(ge=0, lt=1)]], Field(min_length=1)]
    learning_rate: Annotated[list[PositiveFloat], Field(min_length=1)]


class TuningParams(_Schema):
    objective: str
    max_epochs: PositiveInt
    factor: Annotated[int, Field(ge=2)]
    hyperband_iterations: PositiveInt
    early_stopping: bool = True
    directory: str
    search_space: SearchSpaceParams


class EvaluationParams(_Schema):
    batch_size: PositiveInt


class TimingParams(_Schema):
    seed: Seed
    warmup: NonNegativeInt = 1
    repeats: PositiveInt
    throughput_clips: PositiveInt
    batch_size: PositiveInt


class CnnParams(_Schema):
    seed: Seed
    augmentation_mode: Literal["materialized", "on_the_fly"] = "materialized"
    quantize: bool = True
    verbose: Literal[0, 1, 2] = 2
    batch_norm_momentum: Annotated[float, Field(ge=0, lt=1)]
    architecture: ArchitectureParams
    training: CnnTrainingParams
    tuning: TuningParams
    evaluation: EvaluationParams
    timing: TimingParams


# --- transfer -------------------------------------------------------------------------------
def _known_backbone(name: str) -> str:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone, use one of {sorted(BACKBONES)}")
    return name


Backbone = Annotated[str, AfterValidator(_known_backbone)]
_WEIGHTS_HELP = (
    "use imagenet, a backbone's own weights (musicnn: msd or mtt), a path to a local .h5 "
    "weights file, null (random initialisation), or a mapping backbone -> one of those"
)


def _weights(value: Any) -> Any:
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
    interpolation: Literal[INTERPOLATIONS] = "bilinear"  # type: ignore[valid-type]


class AudioWindowParams(_Schema):
    duration_s: PositiveFloat = 29.70
    pad_mode: PadMode = "repeat"
    workers: Workers = None  # decoding processes


class ExperimentParams(_Schema):
    backbone: Backbone
    cut_level: Annotated[str, Field(min_length=1)]  # a layer name; checked when the model loads
    pca_variances: PcaVariances | None = None


class ClassifierParams(_Schema):
    fixed: dict[str, Any] = {}
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}


# The scikit-learn estimators of transfer.nodes.ESTIMATORS (a test keeps the two in step).
ClassifierName = Literal["svm_linear", "svm_rbf", "mlp"]


class TransferParams(_Schema):
    weights: Weights
    random_seed: Seed | None = None
    image: ImageParams = ImageParams()
    audio: AudioWindowParams = AudioWindowParams()
    batch_size: PositiveInt = 16
    timing_runs: PositiveInt = 10
    pca_variances: PcaVariances = [0.99, 0.95, 0.90]
    experiments: Annotated[list[ExperimentParams], Field(min_length=1)]
    cv_folds: Annotated[int, Field(ge=2)]
    n_jobs: Workers = 1
    blas_threads: PositiveInt | None = None
    cache_folds: bool = True
    classifiers: Annotated[dict[ClassifierName, ClassifierParams], Field(min_length=1)]


# --- reporting, serving ---------------------------------------------------------------------
class ReportingParams(_Schema):
    dataset_kind: Annotated[str, Field(min_length=1)]


class ServingParams(_Schema):
    model: Literal["best", "handcrafted", "cnn", "transfer", "fusion"] = "best"
    min_seconds: PositiveFloat
    max_windows: PositiveInt


# --- fusion ---------------------------------------------------------------------------------
class FusionParams(_Schema):
    method: Literal["auto", "late_fusion", "stacking"] = "auto"
    weight_step: Annotated[float, Field(gt=0, le=0.5)] = 0.1
    stacking_c: PositiveFloat = 1.0
    cv_folds: Annotated[int, Field(ge=2)] = 5
    seed: Seed = 42


# --- runtime: where the parallel work runs (music_genre.parallel) ---------------------------
class RuntimeParams(_Schema):
    executor: Literal["local", "dask"] = "local"
    # dask: an existing scheduler (tcp://host:8786), or null for a LocalCluster of the run
    address: Annotated[str, Field(pattern=r"^(tcp|tls|ws|wss)://.+")] | None = None
    n_workers: PositiveInt | None = None  # LocalCluster only (null: one per core)
    threads_per_worker: PositiveInt = 1  # LocalCluster only
    dashboard: str | None = ":8787"  # LocalCluster's dashboard address; null: none
    mixed_precision: bool = False  # float16 compute on a GPU; refused (warning) on a CPU

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


class ParameterValidationHook:
    """Validates the parameters (conf files merged with ``--params``) as soon as the Kedro
    context exists: before any node of ``kedro run`` and before the pipelines, TensorFlow or
    MLflow are even loaded, so a bad value fails within seconds. Also guards everything else
    that builds a context (``genre-predict``, ``%load_ext kedro.ipython``).

    ``tryfirst``: before the plugins' hooks (kedro-mlflow connects to its store here)."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        try:
            validate_parameters(context.config_loader["parameters"])
        except ParameterError as exc:
            raise InvalidParametersError(str(exc)) from None
