"""The demo synthesizer's output is byte-identical for a seed: sha256 of every file of a small
set, compared with constants recorded from the code BEFORE it became the music_genre.demo
package (music_genre/demo_data.py at commit 66b30fd). Any change to a sound, a draw order, the
metadata or the file layout changes at least one checksum."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from music_genre.demo import generate_demo_dataset

# numpy's float64 sin/exp loops differ in the last bit between its AVX-512 and AVX2 code paths;
# the float32 samples (hence the MP3s) must not: `make test-numeric` runs this at AVX2 as well.
pytestmark = pytest.mark.numeric

# generate_demo_dataset(root, tracks_per_genre=1, duration_s=1.5, seed=11, workers=1), pre-split.
# demo_manifest.json holds the output folder: hashed with str(root) replaced by "<root>".
PRE_SPLIT_SHA256 = {
    "README.txt": "a9f7b439c48e66dec73683354262232779e019d88ff936707346e49c9aa7b2c9",
    "demo_manifest.json": "51aa1e64cdce2a23f25c6af33d3f253b8d1999c623288259b5a3b7e0822b997b",
    "fma_metadata/genres.csv": "d83d17b05a7baa1101818f924888a03a3c3e5dd281c2ec2ae8dd553bb8c023e8",
    "fma_metadata/tracks.csv": "83a6ac9f63c4c7c3db62de79ebd6ce5c28dded8ecf976115d2af8f7f72f37cf9",
    "fma_small/900/900000.mp3": "5fdcca505677cf803ca230c30520e1fe634ddb851f3e13f13af189032be2ad72",
    "fma_small/900/900001.mp3": "4e8b51b2561ffbfc3914cb941a3d6dfc017f7cb1bd68d0e68c1d6a6aa5d9da64",
    "fma_small/900/900002.mp3": "783108fcbf388d08c64596c4db5806d568c2b4cfc2e19d87744a81cef9f7ded9",
    "fma_small/900/900003.mp3": "927fd2e3b8b9251b6d6de77278d160d3fd858a3b6640852102f0b530e9acbdfe",
    "fma_small/900/900004.mp3": "659f0230a662e793f5f5c2054b725e615279dcb322dc7e32ff570bbbe0054784",
    "fma_small/900/900005.mp3": "aca17ffe5dd46cfb1b3c99eead1a8ddfda97c990ca95901112d97cd84ffa591e",
    "fma_small/900/900006.mp3": "de2742800f7b291dc55ebbf3872b67580846c1496353b6ab5292f23973d96f72",
    "fma_small/900/900007.mp3": "5906de850a1efa1e6dcb68b00dcaedff05dae814e05db56a412142d2c80b473d",
    "fma_small/900/900008.mp3": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "fma_small/900/900009.mp3": "4ad4a4d37772ff70fd0db78e69ad97783b8ba434986586d78c507f592f43d0cd",
    "fma_small/900/900010.mp3": "a5732ff1cea555b4c2b52b5b1172d18cc0479241c66a52993be88a1409bd9971",
    "fma_small/900/900011.mp3": "a2372a50bf5549e9feb5cab0990289d4d03e87beafcae5faa500699b63ce1824",
}


def _sha256(path: Path, root: Path) -> str:
    data = path.read_bytes()
    if path.name == "demo_manifest.json":
        data = data.replace(str(root).encode(), b"<root>")
    return hashlib.sha256(data).hexdigest()


def test_demo_dataset_is_byte_identical_to_the_pre_split_code(tmp_path):
    root = tmp_path / "demo"
    generate_demo_dataset(root, tracks_per_genre=1, duration_s=1.5, seed=11, workers=1)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    got = {p.relative_to(root).as_posix(): _sha256(p, root) for p in files}
    assert set(got) == set(PRE_SPLIT_SHA256)
    changed = sorted(name for name in got if got[name] != PRE_SPLIT_SHA256[name])
    assert changed == []
