"""Typed schemas of the pipelines' parameters (pydantic v2): one model per pipeline, the types,
ranges and allowed values of ``conf/<env>/parameters/<pipeline>.yml`` in one place.

``validate_parameters`` checks every section that has a schema; :class:`ParameterValidationHook`
runs it before any node of ``kedro run``. Unknown keys are errors (``extra="forbid"``), so a typo
such as ``transfer.cv_fold`` fails instead of being silently ignored. Each problem is reported as
its full key path, the value given and what is allowed.

The schemas live in one module per group of pipelines (preparation, training, run) and the
validation in :mod:`.validation`; this package re-exports their public names.
"""

from __future__ import annotations

from .base import (
    Fraction,
    LogModels,
    NonNegativeInt,
    PadMode,
    PositiveFloat,
    PositiveInt,
    Seed,
    Workers,
)
from .preparation import (
    AugmentationParams,
    IngestionParams,
    SpectrogramParams,
    SplitFractions,
)
from .run import (
    InferenceParams,
    ReportingParams,
    RuntimeParams,
    ServingParams,
)
from .training import (
    ArchitectureParams,
    AudioWindowParams,
    Backbone,
    ClassifierName,
    ClassifierParams,
    CnnParams,
    CnnTrainingParams,
    CnnVariantParams,
    EarlyStoppingParams,
    EvaluationParams,
    ExperimentParams,
    FeatureExtractionParams,
    FusionParams,
    HandcraftedParams,
    ImageParams,
    IntRange,
    MlpSweepParams,
    PcaVariances,
    SearchSpaceParams,
    TimingParams,
    TrainingOverrides,
    TransferParams,
    TuningParams,
    VariantName,
    Weights,
)
from .validation import (
    SCHEMAS,
    InvalidParametersError,
    ParameterError,
    ParameterValidationHook,
    node_settings,
    project_parameters,
    validate_parameters,
    validate_section,
)

__all__ = [
    "node_settings",
    "PositiveInt",
    "NonNegativeInt",
    "PositiveFloat",
    "Seed",
    "Workers",
    "Fraction",
    "PadMode",
    "LogModels",
    "SplitFractions",
    "IngestionParams",
    "SpectrogramParams",
    "AugmentationParams",
    "FeatureExtractionParams",
    "MlpSweepParams",
    "HandcraftedParams",
    "ArchitectureParams",
    "EarlyStoppingParams",
    "CnnTrainingParams",
    "IntRange",
    "SearchSpaceParams",
    "TuningParams",
    "EvaluationParams",
    "TimingParams",
    "TrainingOverrides",
    "VariantName",
    "CnnVariantParams",
    "CnnParams",
    "Backbone",
    "Weights",
    "PcaVariances",
    "ImageParams",
    "AudioWindowParams",
    "ExperimentParams",
    "ClassifierParams",
    "ClassifierName",
    "TransferParams",
    "FusionParams",
    "ReportingParams",
    "ServingParams",
    "InferenceParams",
    "RuntimeParams",
    "SCHEMAS",
    "ParameterError",
    "validate_section",
    "validate_parameters",
    "InvalidParametersError",
    "ParameterValidationHook",
    "project_parameters",
]
