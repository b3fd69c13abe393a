"""Project hooks."""

from __future__ import annotations

import logging
import time
from typing import Any

import click
import pandas as pd
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

from music_genre.contracts import BEST_MODEL_RULES
from music_genre.errors import SetupError
from music_genre.models.evaluation import format_interval
from music_genre.models.selection import best_row

logger = logging.getLogger(__name__)


def best_models(
    results: dict[str, pd.DataFrame | None], params: dict[str, Any] | None = None
) -> pd.DataFrame:
    """The best model of each pipeline, chosen on validation (or CV) accuracy, never on test,
    by the rule of :mod:`music_genre.models.selection`, with what audio it was trained on
    (``params``: the run's parameters)."""
    from music_genre.audio.training_audio import selectable, short_pipeline_audio

    rows = []
    for name, (select_by, report, naming, _) in BEST_MODEL_RULES.items():
        table = results.get(name)
        if table is None or table.empty:
            continue
        best = best_row(selectable(table), name)
        if best is None:
            continue
        pipeline = name.removesuffix("_results")
        rows.append(
            {
                "pipeline": pipeline,
                "best model": " ".join(str(best[c]) for c in naming if c in best),
                "trained on": short_pipeline_audio(pipeline, params or {}, best),
                "selected on": f"{select_by} {best[select_by]:.4f}",
                "test accuracy": round(float(best[report]), 4),
                "95% interval": format_interval(
                    best[report], best.get(f"{report}_ci_low"), best.get(f"{report}_ci_high")
                ),
            }
        )
    return pd.DataFrame(rows)


def slowest_nodes(durations: dict[str, float], limit: int = 8) -> pd.DataFrame:
    """The nodes that took longest, with their share of the run's node time."""
    total = sum(durations.values()) or 1.0
    ranked = sorted(durations.items(), key=lambda item: item[1], reverse=True)[:limit]
    return pd.DataFrame(
        {
            "node": [name for name, _ in ranked],
            "seconds": [round(seconds, 1) for _, seconds in ranked],
            "share": [f"{seconds / total:.0%}" for _, seconds in ranked],
        }
    )


class RunSummaryHook:
    """At the end of ``kedro run``, print where the time went (the slowest nodes) and the best
    model per pipeline that this run trained."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self.durations: dict[str, float] = {}

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._started, self.durations = {}, {}

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        self._started[node.name] = time.perf_counter()

    def _until_now(self, node: Any) -> None:
        started = self._started.get(node.name)
        if started is not None:
            self.durations[node.name] = time.perf_counter() - started

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        self._until_now(node)

    # A generator node's batches, and the lazy jobs the feature store runs, are computed while
    # their outputs are saved, after after_node_run: a node ends with its last saved output.
    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        self._until_now(node)

    @hook_impl
    def after_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any
    ) -> None:
        if self.durations:
            print(  # noqa: T201 - the user asked for a terminal summary, not a log line
                f"\nSlowest nodes ({sum(self.durations.values()):.0f} s of node time in all):\n"
                f"{slowest_nodes(self.durations).to_string(index=False)}"
            )
        produced = pipeline.all_outputs()
        results = {}
        for name in BEST_MODEL_RULES:
            if name in produced and catalog.exists(name):
                results[name] = catalog.load(name)
        params = {
            section: catalog.load(f"params:{section}")
            for section in ("handcrafted", "spectrogram")
            if f"params:{section}" in catalog
        }
        table = best_models(results, params)
        if table.empty:
            return
        text = table.to_string(index=False)
        print(  # noqa: T201 - the user asked for a terminal summary, not a log line
            "\nBest model per pipeline (test accuracy of the model chosen on validation/CV, "
            "95% Wilson interval over the test tracks):\n"
            f"{text}\nFull report: data/08_reporting/summary.md (this run next to the study); "
            "browse with `make viz` and `make mlflow-ui`.\n"
        )


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
    described = getattr(catalog[dataset], "_describe", lambda: {})()
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


def parent_run_name(run_params: dict[str, Any]) -> str:
    """The name of the ``kedro run``'s MLflow run: what ran, where (kedro-mlflow names it after
    the pipelines alone, ``__default__`` for a plain ``kedro run``)."""
    names = run_params.get("pipeline_names") or run_params.get("pipeline_name") or []
    if isinstance(names, str):
        names = [names]
    what = ", ".join(n for n in names if n != "__default__") or "all pipelines"
    return f"kedro run: {what} (env {run_params.get('env') or 'local'})"


class MlflowRunsHook:
    """Before the first node: gives each ``*_mlflow_runs`` dataset of the run its pipeline's
    ``log_models`` parameter (``selected`` | ``all`` | ``none``, validated with the other
    parameters; see :mod:`music_genre.datasets.mlflow_runs`), and names the ``kedro run``'s
    MLflow run after what ran (``trylast``: after kedro-mlflow opened it)."""

    @hook_impl(trylast=True)
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any
    ) -> None:
        from music_genre.datasets.mlflow_runs import MlflowModelRunsDataset

        for name in sorted(pipeline.all_outputs()):
            if not name.endswith("_mlflow_runs") or name not in catalog:
                continue
            dataset = catalog[name]
            if not isinstance(dataset, MlflowModelRunsDataset):
                continue
            key = f"params:{dataset.pipeline}"
            params = catalog.load(key) if key in catalog else None
            if isinstance(params, dict) and "log_models" in params:
                dataset.log_models = params["log_models"]
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.set_tag("mlflow.runName", parent_run_name(run_params))


class SetupErrorHook:
    """A node that stops on a :class:`~music_genre.errors.SetupError` (weights that cannot be
    had offline, a wrong cut level, a missing storage package) ends the run with its message as
    a command-line error: the message names the setting and the fix, and a traceback would
    bury it. Any other error keeps its traceback (it may be a bug)."""

    # trylast: every other hook (MLflow closing its run, the Dask cluster stopping) has seen the
    # error first; on_pipeline_error rather than on_node_error, which Kedro does not call for
    # an error raised while a generator node's output is being consumed.
    @hook_impl(trylast=True)
    def on_pipeline_error(self, error: Exception) -> None:
        if isinstance(error, SetupError):
            raise click.ClickException(str(error)) from None


def runner_advice(runner: Any, executor: str = "local") -> str | None:
    """What the run log says, once, when the run's Kedro runner is a poor fit for this project
    (see the README's "Runners"); ``None`` for SequentialRunner and ThreadRunner.
    ``runner``: Kedro's ``run_params["runner"]``, the runner object's ``str()`` (or its class
    name)."""
    if "ParallelRunner" not in str(runner or ""):
        return None
    advice = (
        "ParallelRunner is a poor fit for this project: its per-track stages (ingestion, "
        "spectrograms, handcrafted features, musicnn decoding) already spread their tracks over "
        "`workers` processes (null: every core), and the grid searches and networks use every "
        "core too, so nodes in parallel processes only compete for the same cores; node hooks "
        "run in those processes, so the slowest-nodes summary stays empty. Use the default "
        "SequentialRunner, or ThreadRunner to overlap nodes (README: Runners)."
    )
    if executor == "dask":
        advice += (
            " With runtime.executor: dask each ParallelRunner process would connect (or start a "
            "LocalCluster) on its own: run it with SequentialRunner or ThreadRunner."
        )
    return advice


class RunnerAdviceHook:
    """Says once, at the start of the run, when its Kedro runner is a poor fit for this project
    (:func:`runner_advice`)."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], catalog: Any) -> None:
        runtime = catalog.load("params:runtime") if "params:runtime" in catalog else None
        advice = runner_advice(run_params.get("runner"), (runtime or {}).get("executor", "local"))
        if advice:
            logger.warning(advice)


class RuntimeHook:
    """Chooses where the run's parallel work goes (``params:runtime``, see
    ``music_genre.infra.parallel``) before the first node, and disconnects from the cluster - stopping
    it when the run started it (``runtime.address: null``) - when the run ends or fails.

    A hook rather than a ``params:runtime`` input on every per-track node: the executor is a
    property of the run, not of a node's result (local and Dask give the same outputs), and it
    keeps the choice in one place instead of in every node signature."""

    @hook_impl
    def before_pipeline_run(self, catalog: Any) -> None:
        from music_genre.infra.parallel import configure

        runtime = configure(catalog.load("params:runtime") if "params:runtime" in catalog else None)
        if runtime.mixed_precision:  # else TensorFlow is not even imported here
            from music_genre.infra.accelerator import configure_precision

            configure_precision(True)
        if runtime.executor == "dask" and runtime.address:
            # connect now: an unreachable scheduler stops the run before any work, without a
            # traceback (the cause is the configuration)
            from music_genre.infra.parallel import SchedulerUnreachableError, dask_client

            try:
                dask_client()
            except SchedulerUnreachableError as exc:
                raise click.ClickException(str(exc)) from None

    @hook_impl
    def after_pipeline_run(self) -> None:
        from music_genre.infra.parallel import shutdown

        shutdown()

    @hook_impl
    def on_pipeline_error(self) -> None:
        from music_genre.infra.parallel import shutdown

        shutdown()
