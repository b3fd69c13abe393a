"""Before a run: the inputs the chosen pipelines need but nothing has produced
(``MissingInputsHook``), and tracks from another collection."""

from __future__ import annotations

from typing import Any

import click
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline


class MissingInputsError(click.ClickException):
    """A run whose input datasets do not exist yet: the CLI prints the message, no traceback."""

    exit_code = 2


def _producers(registered: dict[str, Pipeline]) -> dict[str, str]:
    """dataset -> the smallest registered pipeline that outputs it."""
    producers: dict[str, str] = {}
    named = [(name, p) for name, p in registered.items() if name != "__default__"]
    for name, pipe in sorted(named, key=lambda item: len(item[1].nodes)):
        for dataset in pipe.all_outputs():
            producers.setdefault(dataset, name)
    return producers


def _describe_path(catalog: Any, dataset: str) -> str:
    described: dict[str, Any] = getattr(catalog[dataset], "_describe", lambda: {})()
    location = described.get("filepath") or described.get("path")
    return f" ({location})" if location else ""


def absent_inputs(pipeline: Pipeline, catalog: Any) -> list[str]:
    """Catalog datasets the pipeline reads that do not exist and may not be absent."""
    return [
        d
        for d in pipeline.inputs()
        if not d.startswith("params:")
        and d != "parameters"
        and d in catalog
        and not getattr(catalog[d], "may_be_absent", False)
        and not catalog.exists(d)
    ]


def all_pipelines() -> dict[str, Pipeline]:
    """Every pipeline of the project, whatever ``--pipelines`` selected (Kedro 1.7 registers
    only the selected ones), the same way ``find_pipelines`` discovers them."""
    import importlib
    import pkgutil

    import music_genre.pipelines as package

    found = {
        module.name: importlib.import_module(f"{package.__name__}.{module.name}").create_pipeline()
        for module in pkgutil.iter_modules(package.__path__)
        if module.ispkg
    }
    found["__default__"] = sum(found.values(), Pipeline([]))
    return found


def missing_inputs_message(
    pipeline: Pipeline, catalog: Any, registered: dict[str, Pipeline], env: str | None
) -> str | None:
    """What a run of ``pipeline`` lacks before it starts: every free input that another
    registered pipeline produces, does not exist yet and may not be absent, with the command
    that makes it. ``None`` when nothing is missing."""
    producers = _producers(registered)

    def missing(p: Pipeline) -> list[str]:
        return sorted(d for d in absent_inputs(p, catalog) if d in producers)

    first_missing = missing(pipeline)
    if not first_missing:
        return None
    # Producers of what is missing, and of what they lack in turn, in the default run's order.
    needed: set[str] = set()
    queue = list(first_missing)
    while queue:
        producer = producers[queue.pop()]
        if producer not in needed:
            needed.add(producer)
            queue.extend(d for d in missing(registered[producer]) if d not in pipeline.inputs())
    default_order = [n.name for n in registered.get("__default__", pipeline).nodes]

    def position(name: str) -> int:
        names = [n.name for n in registered[name].nodes]
        return min((default_order.index(n) for n in names if n in default_order), default=0)

    ordered = sorted(needed, key=position)
    env_flag = f" --env {env}" if env and env not in ("local", "base") else ""
    lines = ["These inputs do not exist yet:"]
    lines += [
        f"  - {d}{_describe_path(catalog, d)}: made by the `{producers[d]}` pipeline"
        for d in first_missing
    ]
    lines.append(f"Run first:  kedro run{env_flag} --pipelines={','.join(ordered)}")
    if "raw_audio_collection" in catalog and not catalog.exists("raw_audio_collection"):
        lines.append(
            "The raw audio is missing too: `make demo-data` for the demo (--env demo), or "
            '`make fma-small` (or --params "ingestion.fma_root=<dir>") for conf/base.'
        )
    return "\n".join(lines)


class MissingInputsHook:
    """Before any node runs (and before MLflow opens a run), stop a run whose inputs another
    pipeline must make first, or whose track table belongs to another collection, and say
    which command makes them."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any
    ) -> None:
        foreign = foreign_tracks_message(pipeline, catalog, run_params.get("env"))
        if foreign:
            raise MissingInputsError(foreign)
        if not absent_inputs(pipeline, catalog):  # the usual case: nothing more to import
            return
        message = missing_inputs_message(pipeline, catalog, all_pipelines(), run_params.get("env"))
        if message:
            raise MissingInputsError(message)


def foreign_tracks_message(pipeline: Pipeline, catalog: Any, env: str | None) -> str | None:
    """When the run reads a track table it does not make, and that table was made from another
    collection than the one this run is configured for (typically the demo's table, then
    ``kedro run`` without ``--env demo``), what is wrong and what to run; else ``None``."""
    if "tracks" not in pipeline.inputs() or "raw_audio_collection" not in catalog:
        return None
    collection = catalog["raw_audio_collection"]
    root = collection.audio_root() if hasattr(collection, "audio_root") else None
    if root is None or not catalog.exists("tracks"):
        return None
    paths = catalog.load("tracks")["path"].astype(str)
    prefix = root.rstrip("/") + "/"
    if paths.empty or paths.str.startswith(prefix).any():
        return None
    return (
        f"data/03_primary/tracks.parquet lists the tracks of another collection (e.g. "
        f"{paths.iloc[0]}), not of the one this run is configured for ({root}, env "
        f"{env or 'local'}): its results would mix the two. Run the ingestion for this "
        "collection first (`kedro run --pipelines=ingestion` and the stages you need), or, for "
        "the demo's data, add `--env demo`."
    )
