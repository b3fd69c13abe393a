"""Validation of the parameters against the schemas (``SCHEMAS``, one per pipeline section):
``validate_parameters`` and the Kedro hook that runs it before any node."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
from kedro.framework.hooks import hook_impl
from pydantic import BaseModel, ValidationError

from .base import _Schema
from .preparation import AugmentationParams, IngestionParams, SpectrogramParams
from .run import InferenceParams, ReportingParams, RuntimeParams, ServingParams
from .training import CnnParams, FusionParams, HandcraftedParams, TransferParams

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
    return node_settings(SCHEMAS[section], values, section)


SchemaT = TypeVar("SchemaT", bound=BaseModel)


def node_settings(
    schema: type[SchemaT], params: Mapping[str, Any] | SchemaT, section: str | None = None
) -> SchemaT:
    """The node boundary: parameters as Kedro passes them (a dict) validated once into
    ``schema`` (a model passes through), so a node reads typed fields instead of casting.

    ``section`` names the keys in messages (``handcrafted.mlp``); a pipeline's own schema knows
    its section. The run already failed early on bad values (:class:`ParameterValidationHook`);
    this is what a node called directly (a test, a notebook) gets instead of a ``KeyError``.
    Kedro 1.7 could build the model from a pydantic type hint itself, but kedro-mlflow then
    logs ``params:<section>`` as one long tag instead of the flattened keys earlier runs have.
    """
    if isinstance(params, schema):
        return params
    name = section or next((s for s, cls in SCHEMAS.items() if cls is schema), schema.__name__)
    try:
        return schema.model_validate(params)
    except ValidationError as exc:
        raise ParameterError([_describe(name, schema, e) for e in exc.errors()]) from None


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

    # the project's loader settings (settings.py takes them from there), configured or not
    from .loader import CONF_SOURCE, CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS

    root = find_kedro_project(Path.cwd()) or Path.cwd()
    loader = CONFIG_LOADER_CLASS(
        conf_source=str(Path(root) / CONF_SOURCE),
        env=os.environ.get("KEDRO_ENV"),
        **CONFIG_LOADER_ARGS,
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
