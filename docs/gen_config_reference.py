"""Write the configuration reference (docs/configuration-reference.md) from the parameter schemas.

    python docs/gen_config_reference.py [--out docs/configuration-reference.md]

Every block of ``music_genre.config.SCHEMAS`` becomes a table: each key (nested blocks as
dotted paths), its type with the schema's constraints, the schema's default, the values
``conf/base`` and ``conf/demo`` give it, and its description (the field's docstring in
``parameters.py``). Nothing in the page is written by hand: change the schema, and ``make docs``
rewrites it.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
import types
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from music_genre import config as parameters  # noqa: E402

OUT = ROOT / "docs" / "configuration-reference.md"
LONG = 60  # values longer than this are left to the YAML file
MISSING = object()

_CONSTRAINTS = [
    (annotated_types.Ge, "ge", "≥ {}"),
    (annotated_types.Gt, "gt", "> {}"),
    (annotated_types.Le, "le", "≤ {}"),
    (annotated_types.Lt, "lt", "< {}"),
    (annotated_types.MinLen, "min_length", "length ≥ {}"),
    (annotated_types.MaxLen, "max_length", "length ≤ {}"),
]


def _yaml(value: Any) -> str:
    """A value as it is written in the YAML files (null, true, [..], {..})."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str).replace('"', "")


def _constraints(metadata: list[Any]) -> list[str]:
    out = []
    for item in metadata:
        for kind, attr, text in _CONSTRAINTS:
            if isinstance(item, kind):
                out.append(text.format(getattr(item, attr)))
        for attr, text in (("pattern", "matches `{}`"),):
            if getattr(item, attr, None):
                out.append(text.format(getattr(item, attr)))
        if isinstance(item, FieldInfo):  # a Field(...) inside Annotated
            out += _constraints(item.metadata)
        func = getattr(item, "func", None)  # AfterValidator: its docstring says what it allows
        if func is not None and func.__doc__:
            out.append(func.__doc__.strip().splitlines()[0].rstrip("."))
    return out


def _type(tp: Any, metadata: list[Any] | None = None) -> str:
    """A readable type: unions with |, Literal values quoted, constraints in brackets."""
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        return _type(base, [*meta, *(metadata or [])])
    suffix = ""
    rules = _constraints(metadata or [])
    if rules:
        suffix = f" ({', '.join(rules)})"
    if origin is Literal:
        return " \\| ".join(f"`{_yaml(v)}`" for v in get_args(tp)) + suffix
    if origin in (Union, types.UnionType):
        parts = [_type(a) for a in get_args(tp)]
        return " \\| ".join(parts) + suffix
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any" + suffix
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "block" + suffix
    if origin in (list, dict):
        inner = ", ".join(_type(a) for a in get_args(tp))
        return f"{origin.__name__}[{inner}]" + suffix
    return getattr(tp, "__name__", str(tp)) + suffix


def _nested(tp: Any) -> tuple[str, type[BaseModel]] | None:
    """(path suffix, model) when a field holds a block, a list of blocks or a mapping to blocks."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _nested(get_args(tp)[0])
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "", tp
    if origin is list:
        found = _nested(get_args(tp)[0])
        return ("[]" + found[0], found[1]) if found else None
    if origin is dict:
        found = _nested(get_args(tp)[1])
        return (".<name>" + found[0], found[1]) if found else None
    return None


def _lookup(values: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(values, dict) or part not in values:
            return MISSING
        values = values[part]
    return values


def _cell(value: Any, yaml_file: str) -> str:
    if value is MISSING:
        return ""
    text = _yaml(value)
    if len(text) > LONG:
        return f"see `{yaml_file}`"
    return f"`{text}`" if text else "`''`"


def _yaml_file(env: str, section: str) -> str:
    """The file that gives ``section`` its values in ``env`` (conf/demo falls back to base)."""
    path = f"{env}/parameters/{section}.yml"
    return path if (ROOT / path).exists() else f"conf/base/parameters/{section}.yml"


def _rows(
    model: type[BaseModel],
    prefix: str,
    path: list[str] | None,
    envs: dict[str, Any],
    section: str,
) -> list[str]:
    """One table row per key of ``model``; a block's keys follow it as dotted paths.

    ``path`` locates the model's values in the merged parameters; None under a list or a
    mapping of blocks, whose rows hold no single value."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}"
        sub = None if path is None else [*path, name]
        nested = _nested(field.annotation)
        block = nested is not None and nested[0] == ""
        if field.is_required():
            default = "required"
        elif block:
            default = "(keys below)"
        else:
            default = f"`{_yaml(field.get_default(call_default_factory=True))}`"
        values = [
            _cell(_lookup(values, sub) if sub and not block else MISSING, _yaml_file(env, section))
            for env, values in envs.items()
        ]
        description = (field.description or "").replace("``", "`").replace("\n", " ")
        typ = _type(field.annotation, field.metadata)
        rows.append(f"| `{key}` | {typ} | {default} | {' | '.join(values)} | {description} |")
        if nested:
            suffix, child = nested
            rows += _rows(child, key + suffix, sub if block else None, envs, section)
    return rows


def _load_envs() -> dict[str, Any]:
    """The merged parameters of conf/base and of conf/demo, as ``kedro run`` sees them."""
    from kedro.config import OmegaConfigLoader

    from music_genre.settings import CONFIG_LOADER_ARGS

    envs = {}
    for env in ("base", "demo"):
        args = {**CONFIG_LOADER_ARGS, "default_run_env": env}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loader = OmegaConfigLoader(str(ROOT / "conf"), **args)
            envs[f"conf/{env}"] = loader["parameters"]
    return envs


def render() -> str:
    """The reference page's Markdown."""
    envs = _load_envs()
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by docs/gen_config_reference.py from src/music_genre/config/"
        " (run by `make docs`); do not edit. -->",
        "",
        "Every parameter block of `conf/<env>/parameters/<block>.yml`, generated from its schema"
        " in `music_genre.config` (see [Configuration](configuration.md)). *Default* is the"
        " schema's (required: the YAML file must give it); the `conf/base` and `conf/demo`"
        " columns are the merged values `kedro run` and `kedro run --env demo` get (blank: not"
        " set, the default applies). Override any"
        ' key for one run with `--params "block.key=value"`.',
        "",
    ]
    for section, schema in parameters.SCHEMAS.items():
        doc = (schema.__doc__ or "").strip().replace("``", "`")
        lines += [f"## `{section}` — {schema.__name__}", "", doc, ""]
        lines += [
            f"| key | type | default | {' | '.join(envs)} | description |",
            "|---|---|---|" + "---|" * len(envs) + "---|",
        ]
        lines += _rows(schema, section, [section], envs, section)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.write_text(render())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
