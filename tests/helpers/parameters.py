"""The project's own parameters (conf/base), for tests that call nodes directly: the nodes
validate their whole section, so a test starts from the real one and changes what it tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONF = Path(__file__).resolve().parents[2] / "conf" / "base" / "parameters"


def base_parameters(section: str) -> dict[str, Any]:
    """``conf/base/parameters/<section>.yml``'s ``section`` block, as Kedro passes it."""
    return yaml.safe_load((CONF / f"{section}.yml").read_text())[section]
