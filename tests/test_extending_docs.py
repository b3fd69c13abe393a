"""The worked backbone example of docs/extending.md is code that works: the snippet registers
its spec in the backbone table, the parameters accept it, and its cut levels have the sizes
the page states."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from music_genre.config import TransferParams
from music_genre.models.backbones import BACKBONES, registry
from music_genre.models.backbones.images import feature_sizes

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "extending.md"
CONF = ROOT / "conf" / "base" / "parameters"


def _backbone_snippet() -> str:
    section = PAGE.read_text().split("## Adding a backbone", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the backbone section has one python block"
    return blocks[0]


@pytest.fixture
def documented_backbone():
    namespace = dict(vars(registry))  # the snippet is appended to registry.py: its names
    exec(compile(_backbone_snippet(), str(PAGE), "exec"), namespace)
    try:
        yield BACKBONES["efficientnet_b0"]
    finally:
        BACKBONES.pop("efficientnet_b0", None)


def test_documented_backbone_registers_and_validates(documented_backbone):
    transfer = yaml.safe_load((CONF / "transfer.yml").read_text())["transfer"]
    transfer["weights"]["efficientnet_b0"] = None  # the page's yaml block, random weights
    transfer["experiments"].append({"backbone": "efficientnet_b0", "cut_level": "avg_pool"})
    params = TransferParams.model_validate(transfer)
    assert params.experiments[-1].backbone == "efficientnet_b0"
    del BACKBONES["efficientnet_b0"]
    with pytest.raises(ValueError, match="unknown backbone"):  # the table is what decides
        TransferParams.model_validate(transfer)
    assert documented_backbone.imagenet_url.endswith("/" + documented_backbone.imagenet_file)


def test_documented_backbone_cut_levels_have_the_stated_sizes(documented_backbone):
    model = documented_backbone.build(None)  # random weights: only the shapes are checked
    assert model.count_params() == 5_330_571
    sizes = feature_sizes(model, documented_backbone.cut_levels)
    assert sizes == {"top_activation": 7 * 7 * 1280, "avg_pool": 1280}
