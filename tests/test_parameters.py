"""The parameter schemas (music_genre.config): conf/base and conf/demo validate, and bad
values or unknown keys fail with the full key path, the value and what is allowed."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args

import pytest
from kedro.config import OmegaConfigLoader

from music_genre.config import (
    SCHEMAS,
    ClassifierName,
    InvalidParametersError,
    ParameterError,
    ParameterValidationHook,
    validate_parameters,
)
from music_genre.settings import CONFIG_LOADER_ARGS
from tests.helpers.processes import run_command

CONF = Path(__file__).resolve().parents[1] / "conf"


def _parameters(env: str) -> dict[str, Any]:
    loader = OmegaConfigLoader(
        conf_source=str(CONF),
        base_env=CONFIG_LOADER_ARGS["base_env"],
        default_run_env=env,
        merge_strategy=CONFIG_LOADER_ARGS["merge_strategy"],
    )
    return loader["parameters"]


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return _parameters("base")


@pytest.mark.parametrize("env", ["base", "demo"])
def test_conf_validates_and_every_section_has_a_schema(env):
    params = _parameters(env)
    assert set(params) == set(SCHEMAS)
    models = validate_parameters(params)
    assert set(models) == set(SCHEMAS)


def test_demo_overrides_reach_the_schema():
    models = validate_parameters(_parameters("demo"))
    assert models["transfer"].cv_folds == 3
    assert models["handcrafted"].source == "extract"
    assert models["cnn"].training.epochs == 2
    assert models["cnn"].training.learning_rate == 1e-3  # from base: the merge is deep
    assert models["handcrafted"].mlp.learning_rate == 1e-3
    assert models["handcrafted"].mlp.max_epochs == 200  # from base


def _with(params: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(params)
    *parents, last = path.split(".")
    node = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        # unknown keys (typos), with a suggestion
        ("transfer.cv_fold", 3, "transfer.cv_fold=3: unknown key (did you mean 'cv_folds'?)"),
        ("cnn.training.epoch", 5, "cnn.training.epoch=5: unknown key (did you mean 'epochs'?)"),
        ("spectrogram.nmels", 64, "spectrogram.nmels=64: unknown key (did you mean 'n_mels'?)"),
        ("handcrafted.mlp.l1", 0.1, "handcrafted.mlp.l1=0.1: unknown key"),
        # ranges
        ("spectrogram.workers", -5, "spectrogram.workers=-5: must be null (all cores), -1"),
        ("spectrogram.workers", 0, "spectrogram.workers=0: must be null"),
        ("ingestion.workers", -2, "ingestion.workers=-2: must be null"),
        (
            "cnn.training.epochs",
            0,
            "cnn.training.epochs=0: Input should be greater than or equal to 1",
        ),
        ("cnn.tuning.factor", 1, "cnn.tuning.factor=1: Input should be greater than or equal to 2"),
        (
            "cnn.architecture.dropout",
            1.0,
            "cnn.architecture.dropout=1.0: Input should be less than 1",
        ),
        (
            "cnn.architecture.filters",
            [64, 64],
            "cnn.architecture.filters=[64, 64]: List should have at least 4",
        ),
        ("cnn.batch_norm_momentum", -0.1, "cnn.batch_norm_momentum=-0.1"),
        ("transfer.cv_folds", 1, "transfer.cv_folds=1: Input should be greater than or equal to 2"),
        (
            "transfer.pca_variances",
            [0.9, 1.5],
            "transfer.pca_variances[1]=1.5: Input should be less than or equal to 1",
        ),
        ("spectrogram.fmax", 20000, "spectrogram: fmax=20000 is above the Nyquist frequency"),
        ("augmentation.time_mask_max_width", -1, "augmentation.time_mask_max_width=-1"),
        ("serving.max_windows", 0, "serving.max_windows=0"),
        ("serving.max_files", 0, "serving.max_files=0"),
        ("serving.allowed_roots", ["music"], "serving.allowed_roots[0]='music'"),
        # allowed values
        (
            "cnn.augmentation_mode",
            "sometimes",
            "cnn.augmentation_mode='sometimes': Input should be 'materialized' or 'on_the_fly'",
        ),
        (
            "augmentation.mask_value",
            "zero",
            "augmentation.mask_value='zero': Input should be 'image_zero', 'min' or 'mean'",
        ),
        (
            "spectrogram.pad_mode",
            "loop",
            "spectrogram.pad_mode='loop': Input should be 'repeat' or 'zeros'",
        ),
        (
            "handcrafted.source",
            "csv",
            "handcrafted.source='csv': Input should be 'fma_csv' or 'extract'",
        ),
        (
            "ingestion.subset",
            "tiny",
            "ingestion.subset='tiny': Input should be 'small', 'medium' or 'large'",
        ),
        ("transfer.image.interpolation", "cubic", "transfer.image.interpolation='cubic'"),
        (
            "transfer.experiments.0.backbone",
            "vgg19",
            "transfer.experiments[0].backbone='vgg19': unknown backbone",
        ),
        (
            "transfer.classifiers.knn",
            {"grid": {}},
            "transfer.classifiers.knn='knn': Input should be 'svm_linear', 'svm_rbf' or 'mlp'",
        ),
        ("transfer.weights", 3, "transfer.weights=3: use imagenet, a backbone's own weights"),
        (
            "transfer.weights",
            {"vgg19": "imagenet"},
            "transfer.weights: unknown backbone(s) ['vgg19']",
        ),
        # types: YAML's `true` is no integer, a string is no number
        ("spectrogram.n_mels", True, "spectrogram.n_mels=True: Input should be a valid integer"),
        (
            "handcrafted.mlp.batch_size",
            "32",
            "handcrafted.mlp.batch_size='32': Input should be a valid integer",
        ),
        ("cnn.quantize", "yes", "cnn.quantize='yes': Input should be a valid boolean"),
    ],
)
def test_bad_values_and_unknown_keys_are_named(base, path, value, expected):
    with pytest.raises(ParameterError) as info:
        validate_parameters(_with(base, path, value))
    assert expected in str(info.value)


def test_missing_required_key_is_named(base):
    params = copy.deepcopy(base)
    del params["cnn"]["training"]["batch_size"]
    with pytest.raises(ParameterError, match=r"cnn\.training\.batch_size: missing \(required\)"):
        validate_parameters(params)


def test_every_problem_is_reported_at_once(base):
    params = _with(_with(base, "transfer.cv_fold", 3), "spectrogram.workers", -5)
    with pytest.raises(ParameterError) as info:
        validate_parameters(params)
    assert len(info.value.problems) == 2


def test_split_fractions_must_sum_to_one(base):
    with pytest.raises(
        ParameterError,
        match="ingestion.split_fractions: the three fractions must sum to 1, they sum to 1.1",
    ):
        validate_parameters(_with(base, "ingestion.split_fractions.training", 0.9))


@pytest.mark.slow
def test_classifier_names_match_the_transfer_estimators():
    from music_genre.pipelines.transfer.search import ESTIMATORS

    assert set(get_args(ClassifierName)) == set(ESTIMATORS)


def test_hook_stops_the_run_with_a_clean_cli_error(base):
    bad = SimpleNamespace(config_loader={"parameters": _with(base, "transfer.cv_fold", 3)})
    with pytest.raises(InvalidParametersError) as info:
        ParameterValidationHook().after_context_created(bad)
    assert info.value.exit_code == 1
    assert "transfer.cv_fold=3: unknown key" in info.value.format_message()
    ok = SimpleNamespace(config_loader={"parameters": base})
    ParameterValidationHook().after_context_created(ok)  # valid: no exception


@pytest.mark.slow
def test_kedro_run_fails_fast_naming_the_key():
    """The acceptance check, end to end: exit status 1, the key in the message, no traceback."""
    run = run_command(
        [
            sys.executable,
            "-m",
            "kedro",
            "run",
            "--env",
            "demo",
            "--params",
            "spectrogram.workers=-5",
        ],
        cwd=CONF.parent,
        timeout=120,
        env=dict(os.environ, KEDRO_DISABLE_TELEMETRY="1", DO_NOT_TRACK="1"),
    )
    assert run.returncode == 1
    assert "spectrogram.workers=-5: must be null (all cores), -1" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr
