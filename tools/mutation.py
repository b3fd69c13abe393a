"""`make mutation` (issue #25): mutmut on the modules whose results users read, one worker, then
the score per module. Configuration (files, test selection) is [tool.mutmut] in pyproject.toml;
this script chooses the functions: whole modules for evaluation, fusion and the augmentation;
the split logic (grouped_split); the log-mel front end of spectrograms.py; the damage checks of
the stores. Each run starts from a fresh mutants/ folder, so the scores are of the tree as it is.

    python tools/mutation.py            # run, then print the scores
    python tools/mutation.py --report   # print the scores of the last run only
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

# module label -> (meta file under mutants/, mutant-name globs)
MODULES: dict[str, tuple[str, list[str]]] = {
    "evaluation": ("src/music_genre/models/evaluation.py", ["music_genre.models.evaluation.*"]),
    "fusion": ("src/music_genre/models/fusion.py", ["music_genre.models.fusion.*"]),
    # the split logic itself; the split-file and tag plumbing around it is exercised only by
    # kedro runs of several seconds each, too slow for a run per mutant
    "ingestion.splits (grouped_split)": (
        "src/music_genre/pipelines/ingestion/splits.py",
        ["music_genre.pipelines.ingestion.splits.x_grouped_split__mutmut_*"],
    ),
    "augment": ("src/music_genre/audio/augment.py", ["music_genre.audio.augment.*"]),
    "spectrograms (log-mel front end)": (
        "src/music_genre/audio/spectrograms.py",
        [
            f"music_genre.audio.spectrograms.x_{name}__mutmut_*"
            for name in (
                "n_frames",
                "_hz_to_mel",
                "_mel_to_hz",
                "mel_filterbank",
                "mel_power_spectrogram",
                "log_mel_spectrogram",
                "to_study_image",
            )
        ],
    ),
    "stores' damage detection": (
        "src/music_genre/datasets/spectrogram_store.py",
        [
            f"music_genre.datasets.spectrogram_store.x_{name}__mutmut_*"
            for name in ("npy_damage", "_key_and_tag", "list_store")
        ],
    ),
    "feature rows' damage detection": (
        "src/music_genre/datasets/feature_rows.py",
        [
            f"music_genre.datasets.feature_rows.x_{name}__mutmut_*"
            for name in ("_row_files", "_read_row")
        ],
    ),
}

KILLED = {1, 3, 36, 24, -24, 152, 255}  # a failing test, or a timeout (mutmut counts both)


def report() -> int:
    total_survivors = 0
    print(f"{'module':36} {'mutants':>7} {'killed':>6} {'survived':>8} {'other':>5}  score")
    for label, (path, patterns) in MODULES.items():
        meta = Path("mutants") / f"{path}.meta"
        if not meta.exists():
            print(f"{label:36} (not run)")
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        chosen = {k: v for k, v in codes.items() if any(fnmatch.fnmatch(k, p) for p in patterns)}
        killed = sum(v in KILLED for v in chosen.values())
        survived = sorted(k for k, v in chosen.items() if v == 0)
        other = len(chosen) - killed - len(survived)
        score = f"{100 * killed / len(chosen):.1f}%" if chosen else "-"
        print(f"{label:36} {len(chosen):7} {killed:6} {len(survived):8} {other:5}  {score}")
        total_survivors += len(survived)
        for name in survived:
            print(f"    survived: {name}")
        others: dict[str, int] = {}
        for code in chosen.values():
            if code not in KILLED and code != 0:
                key = "not checked" if code is None else f"exit {code}"
                others[key] = others.get(key, 0) + 1
        if others:
            print("    other: " + ", ".join(f"{n} {k}" for k, n in sorted(others.items())))
    return total_survivors


def main() -> None:
    if "--report" not in sys.argv:
        patterns = [p for _, globs in MODULES.values() for p in globs]
        shutil.rmtree("mutants", ignore_errors=True)
        mutmut = Path(sys.executable).with_name("mutmut")
        start = time.monotonic()
        subprocess.run([str(mutmut), "run", "--max-children", "1", *patterns], check=False)
        print(f"\nmutmut ran {time.monotonic() - start:.0f} s")
    report()


if __name__ == "__main__":
    main()
