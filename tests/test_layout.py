"""The package layout (issue #22): module sizes, the top level, no import cycle, no fcntl, no old
module path in src. The layers themselves are `lint-imports`' contracts (pyproject.toml)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "music_genre"
LONG, MAX = 400, 600
REASON = re.compile(r"^# Over 400 lines: \S.*$")


def _modules() -> dict[str, list[str]]:
    return {
        path.relative_to(PACKAGE).as_posix(): path.read_text().splitlines()
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_no_module_over_600_lines_and_long_ones_say_why():
    modules = _modules()
    over = {m: len(lines) for m, lines in modules.items() if len(lines) > MAX}
    assert not over, f"modules over {MAX} lines: {over}"
    unexplained = [
        m for m, lines in modules.items() if len(lines) > LONG and not REASON.match(lines[0])
    ]
    assert not unexplained, f"over {LONG} lines without '# Over 400 lines: <why>' first"


def test_the_top_level_keeps_at_most_ten_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top


def test_no_import_cycle_between_modules():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("music_genre")
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while (top := stack.pop()) != module:
                component.append(top)
            if component:
                cycles.append(sorted([module, *component]))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert not cycles, cycles


def test_src_uses_no_old_module_path():
    from music_genre._legacy_paths import LEGACY_MODULES

    old = re.compile(r"\b(" + "|".join(re.escape(m) for m in LEGACY_MODULES) + r")\b(?!\.\w)")
    used = [
        f"{m}:{n}"
        for m, lines in _modules().items()
        if m != "_legacy_paths.py"
        for n, line in enumerate(lines, 1)
        if re.search(r"^\s*(from|import) ", line) and old.search(line)
    ]
    assert not used, used


@pytest.mark.slow
def test_import_music_genre_needs_no_fcntl():
    """`import music_genre` (and the numba cache's lock) work where fcntl does not exist."""
    code = (
        "import sys\n"
        "import music_genre\n"
        "assert 'fcntl' not in sys.modules, 'import music_genre imported fcntl'\n"
        "sys.modules['fcntl'] = None  # any later `import fcntl` raises ImportError\n"
        "import music_genre.audio.features, music_genre.infra.numba_cache\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
