"""The base of every parameter schema (strict, no unknown keys, attribute docstrings as
descriptions) and the constrained types they share."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
)

from music_genre.audio.spectrograms import PAD_MODES


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
