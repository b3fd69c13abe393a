"""The configuration reference (docs/gen_config_reference.py) is generated from the parameter
schemas: it names every key of every schema, nested blocks included, with its description, and
every field has a description to give."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from music_genre.config import SCHEMAS

GENERATOR = Path(__file__).resolve().parents[1] / "docs" / "gen_config_reference.py"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_config_reference", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _block(tp: Any) -> tuple[str, type[BaseModel]] | None:
    """(path suffix, model) for a block, a list of blocks or a mapping to blocks."""
    if get_origin(tp) is Annotated:
        return _block(get_args(tp)[0])
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "", tp
    if get_origin(tp) in (list, dict):
        inner = _block(get_args(tp)[-1])
        if inner:
            return ("[]" if get_origin(tp) is list else ".<name>") + inner[0], inner[1]
    return None


def _fields(model: type[BaseModel], prefix: str) -> list[tuple[str, Any]]:
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}"
        out.append((key, field))
        block = _block(field.annotation)
        if block:
            out += _fields(block[1], key + block[0])
    return out


ALL_FIELDS = [item for section, schema in SCHEMAS.items() for item in _fields(schema, section)]


@pytest.fixture(scope="module")
def reference() -> str:
    return _generator().render()


def test_every_field_has_a_description() -> None:
    missing = [key for key, field in ALL_FIELDS if not (field.description or "").strip()]
    assert not missing, f"fields without a docstring in music_genre/config/: {missing}"


def test_reference_names_every_field_with_its_description(reference: str) -> None:
    rows = {line.split(" | ")[0].strip("| `"): line for line in reference.splitlines()}
    assert len(ALL_FIELDS) > 100
    for key, field in ALL_FIELDS:
        assert key in rows, f"{key} missing from the configuration reference"
        description = field.description.replace("``", "`").replace("\n", " ")
        assert rows[key].endswith(f"| {description} |"), rows[key]
    for section, schema in SCHEMAS.items():
        assert f"## `{section}` — {schema.__name__}" in reference


def test_reference_gives_defaults_and_the_configured_values(reference: str) -> None:
    rows = {line.split(" | ")[0].strip("| `"): line.split(" | ") for line in reference.splitlines()}
    # key | type | default | conf/base | conf/demo | description
    assert rows["spectrogram.n_mels"][1:5] == ["int (≥ 1)", "required", "`128`", "`128`"]
    assert rows["cnn.training.epochs"][3:5] == ["`50`", "`2`"]
    assert rows["runtime.executor"][1:3] == ["`local` \\| `dask`", "`local`"]
