"""The transfer networks' batch tasks (``runtime.executor: dask``), run in this process: an
extractor travels without its network, the task's process builds it once and reuses it, and
weights that would differ between processes, or a cut level the backbone lacks, come back as
set-up errors for the driver to raise."""

from __future__ import annotations

import os
import pickle

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from music_genre.errors import SetupError  # noqa: E402
from music_genre.models import backbones  # noqa: E402
from music_genre.models.backbones import (  # noqa: E402
    BackboneWeightsError,
    CutLevelError,
    CutLevelFeatureExtractor,
    WeightsChoice,
    cut_level_batch,
    worker_network_counts,
)
from tests.helpers.tiny_backbone import TINY  # noqa: E402

pytestmark = pytest.mark.numeric  # float results of TensorFlow: make test-numeric


def _spectrograms(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.normal(-40, 15, (64, 80)).astype(np.float32) for _ in range(n)]


def _sent(extractor: CutLevelFeatureExtractor) -> CutLevelFeatureExtractor:
    """The extractor as a worker receives it."""
    return pickle.loads(pickle.dumps(extractor))


@pytest.mark.slow
def test_a_batch_task_builds_the_network_once_and_gives_the_local_features():
    local = CutLevelFeatureExtractor(TINY, WeightsChoice("random", seed=11), TINY.cut_levels)
    specs = _spectrograms(5)
    local(specs)
    assert local.built
    sent = _sent(local)
    assert not sent.built and sent.network_key == local.network_key  # no network travels
    assert len(pickle.dumps(local)) < 10_000

    before = worker_network_counts()
    first = cut_level_batch(sent, [("a", specs[0]), ("b", specs[1]), ("c", specs[2])])
    bad = np.zeros(80, dtype=np.float32)  # 1-D: its image cannot be made, the rest can
    second = cut_level_batch(_sent(local), [("d", specs[3]), ("x", bad), ("e", specs[4])])
    after = worker_network_counts()

    assert after["builds"].get("tinynet", 0) - before["builds"].get("tinynet", 0) == 1
    assert after["batches"]["tinynet"] - before["batches"].get("tinynet", 0) == 2
    assert first.build_seconds is not None and second.build_seconds is None
    assert first.item_ids == ["a", "b", "c"] and second.item_ids == ["d", "e"]
    assert list(second.failures) == ["x"]
    assert first.worker.endswith(f":{os.getpid()}")
    # bit for bit against the local extractor on the same batches (the promise: a cluster run
    # batches as the local one does); another batch shape may pick other oneDNN kernels
    for batch, indices in ((first, [0, 1, 2]), (second, [3, 4])):
        local_batch = local([specs[i] for i in indices])
        for cut in TINY.cut_levels:
            np.testing.assert_array_equal(batch.features[cut], local_batch[cut])


def _setup_error(extractor: CutLevelFeatureExtractor) -> Exception:
    """What a batch task returns for the driver to raise when the network cannot be built."""
    result = cut_level_batch(pickle.loads(pickle.dumps(extractor)), [("a", _spectrograms(1)[0])])
    assert result.item_ids == [] and result.features == {} and result.setup_error is not None
    return pickle.loads(pickle.dumps(result.setup_error))  # it travels back to the driver


def test_unseeded_random_weights_are_refused_on_a_worker():
    error = _setup_error(CutLevelFeatureExtractor(TINY, WeightsChoice("random"), TINY.cut_levels))
    assert isinstance(error, BackboneWeightsError) and isinstance(error, SetupError)
    assert "transfer.random_seed" in str(error)


def test_an_unknown_cut_level_is_a_setup_error_from_the_worker():
    error = _setup_error(CutLevelFeatureExtractor(TINY, WeightsChoice("random", seed=1), ("fc9",)))
    assert isinstance(error, CutLevelError) and "fc9" in str(error)


def test_a_weights_file_that_differs_on_the_worker_is_named(tmp_path):
    path = tmp_path / "tiny.weights.h5"
    backbones.build_backbone(TINY, WeightsChoice("random", seed=1)).save_weights(str(path))
    extractor = CutLevelFeatureExtractor(
        TINY, WeightsChoice("file", path=str(path)), TINY.cut_levels
    )
    extractor.network_key  # noqa: B018 - the driver fingerprints the file it has
    backbones.build_backbone(TINY, WeightsChoice("random", seed=2)).save_weights(str(path))
    error = _setup_error(extractor)
    assert isinstance(error, BackboneWeightsError) and "differs from the driver's" in str(error)
    path.unlink()
    error = _setup_error(extractor)
    assert isinstance(error, BackboneWeightsError) and "cannot read the weights file" in str(error)
