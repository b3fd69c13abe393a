"""The stores' damage detection, file by file (issue #25: the tests that kill its mutants): a
stored ``.npy`` spectrogram is complete exactly when its header parses and the file holds the
bytes it announces; a feature row that cannot be read is named and left out."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from music_genre.datasets import feature_rows as rows
from music_genre.datasets import spectrogram_store as store
from music_genre.infra.storage import StoreFolder


def _npy(path: Path, array: np.ndarray, version=None) -> int:
    with open(path, "wb") as handle:
        np.lib.format.write_array(handle, array, version=version, allow_pickle=True)
    return path.stat().st_size


def test_npy_damage_reads_the_header_and_counts_the_bytes(tmp_path: Path):
    folder = StoreFolder(str(tmp_path))
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    size = _npy(tmp_path / "a.npy", array)
    assert size == 128 + 48  # a 128-byte header, then 3 * 4 * 4 bytes
    assert store.npy_damage(folder, "a.npy", size) is None
    assert store.npy_damage(folder, "a.npy", size - 1) == (
        "175 bytes where its header announces 176 (truncated or overwritten)"
    )
    assert store.npy_damage(folder, "a.npy", size + 4) == (
        "180 bytes where its header announces 176 (truncated or overwritten)"
    )
    v2 = _npy(tmp_path / "v2.npy", array, version=(2, 0))
    assert store.npy_damage(folder, "v2.npy", v2) is None
    assert store.npy_damage(folder, "v2.npy", v2 - 48) is not None
    empty = _npy(tmp_path / "empty.npy", np.zeros((0, 5), np.float64))
    assert store.npy_damage(folder, "empty.npy", empty) is None
    objects = _npy(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    assert store.npy_damage(folder, "o.npy", objects) == "holds Python objects, not numbers"
    (tmp_path / "junk.npy").write_bytes(b"not an array at all")
    assert store.npy_damage(folder, "junk.npy", 19).startswith("unreadable header (ValueError: ")
    (tmp_path / "half.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:40])
    assert store.npy_damage(folder, "half.npy", 40).startswith("unreadable header (")
    assert store.npy_damage(folder, "absent.npy", 0).startswith(
        "unreadable header (FileNotFoundError: "
    )


@pytest.mark.parametrize(
    "name, parsed",
    [
        ("000002.abc.npy", ("000002", "abc")),
        ("a.b.c-D_9.npy", ("a.b", "c-D_9")),
        ("k." + "t" * 64 + ".npy", ("k", "t" * 64)),
        ("k." + "t" * 65 + ".npy", None),
        (".000002.abc.npy", None),
        ("000002.abc.npz", None),
        ("000002.npy", None),
        (".abc.npy", None),
        ("k..npy", None),
        ("k.bad tag.npy", None),
    ],
)
def test_key_and_tag(name, parsed):
    assert store._key_and_tag(name) == parsed


def test_list_store_leaves_out_and_names_damaged_files(tmp_path: Path, caplog):
    folder = StoreFolder(str(tmp_path))
    array = np.ones((2, 3), np.float32)
    for name in ("1.a.npy", "1.b.npy", "2.a.npy", ".3.a.npy", "notes.npy.txt"):
        _npy(tmp_path / name, array)
    (tmp_path / "4.a.npy").mkdir()
    size = _npy(tmp_path / "5.a.npy", array)
    with open(tmp_path / "5.a.npy", "r+b") as handle:
        handle.truncate(size - 1)
    with caplog.at_level(logging.WARNING):
        found = store.list_store(folder)
    assert found == {"1": {"a", "b"}, "2": {"a"}}
    assert caplog.records[-1].getMessage() == (
        f"Damaged stored array {tmp_path / '5.a.npy'}: {size - 1} bytes where its header "
        f"announces {size} (truncated or overwritten); it will be recomputed"
    )
    assert caplog.text.count("Damaged stored array") == 1
    assert store.list_store(StoreFolder(str(tmp_path / "absent"))) == {}


def test_feature_rows_read_back_or_named_as_damaged(tmp_path: Path, caplog):
    folder = StoreFolder(str(tmp_path))
    dataset = rows.FeatureRowsDataset(path=str(tmp_path))
    dataset.save(
        {
            "b1": rows.FeatureRow(np.array([1.5, 2.5], np.float32), "settings x", ""),
            "a1": rows.FeatureRow(np.zeros(0, np.float32), "settings y", "decode failed"),
        }
    )
    (tmp_path / ".c1.npz").write_bytes(b"")
    (tmp_path / "d1.npz").mkdir()
    (tmp_path / "e1.npy").write_bytes(b"")
    assert rows._row_files(folder) == ["a1.npz", "b1.npz"]
    row = rows._read_row(folder, "b1.npz")
    assert row.values.tolist() == [1.5, 2.5] and row.values.dtype == np.float32
    assert (row.provenance, row.error, row.failed) == ("settings x", "", False)
    failed = rows._read_row(folder, "a1.npz")
    assert (failed.provenance, failed.error, failed.failed) == ("settings y", "decode failed", True)
    light = rows._read_row(folder, "b1.npz", with_values=False)
    assert light.values.shape == (0,) and light.values.dtype == np.float32
    assert light.provenance == "settings x"
    (tmp_path / "b1.npz").write_bytes((tmp_path / "b1.npz").read_bytes()[:50])
    try:
        np.load(tmp_path / "b1.npz", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - what _read_row is expected to name
        why = f"{type(exc).__name__}: {exc}"
    with caplog.at_level(logging.WARNING):
        assert rows._read_row(folder, "b1.npz") is None
    assert caplog.records[-1].getMessage() == (
        f"Damaged feature row {tmp_path / 'b1.npz'} ({why}); that track will be extracted again"
    )
    # a row holding Python objects is never unpickled: it counts as damaged
    np.savez(
        tmp_path / "p1.npz", values=np.array([{"a": 1}], dtype=object), provenance="x", error=""
    )
    assert rows._read_row(folder, "p1.npz") is None
