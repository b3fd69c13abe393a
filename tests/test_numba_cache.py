"""librosa's numba cache survives processes that make their first call at the same moment.

numba's ``@guvectorize(cache=True)`` cache is not safe between processes (numba #10128): four
processes released at a barrier on a cold cache used to leave a cache that crashed the next
process (exit -11) in most rounds. ``music_genre.infra.numba_cache`` serialises compilation under a
file lock; this test repeats the race on a cold folder and then loads the cache afresh.

Keep this module's top-level imports light: the spawned processes import it before they set
their ``NUMBA_CACHE_DIR``, which must happen before numba is imported.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import subprocess
import sys
import textwrap

import pytest

from tests.helpers.processes import run_command

# three rounds of four processes compiling librosa's numba code on a cold cache
pytestmark = pytest.mark.slow

PROCESSES = 4
ROUNDS = 3


def _write_clip(path: str) -> None:
    import numpy as np
    import soundfile as sf

    rate = 22050
    time = np.arange(int(rate * 1.5)) / rate
    chord = sum(np.sin(2 * np.pi * f * time) for f in (220.0, 277.2, 329.6)) * 0.2
    sf.write(path, chord.astype(np.float32), rate)


def _compute(path: str) -> tuple[list[float], list[float]]:
    """The project's feature and spectrogram code on one clip (what its workers call)."""
    from music_genre.audio.features import extract_features
    from music_genre.audio.spectrograms import STUDY_SETTINGS, spectrogram_from_file

    features = extract_features(path)
    spectrogram = spectrogram_from_file(path, {**STUDY_SETTINGS, "pad_mode": "repeat"})
    return features.tolist(), spectrogram[:, :4].ravel().tolist()


def _racer(cache: str, clip: str, barrier, results) -> None:
    os.environ["NUMBA_CACHE_DIR"] = cache  # before numba is imported in this process
    import music_genre.audio.features  # noqa: F401 - imports librosa and numba before the barrier

    barrier.wait()
    results.put(_compute(clip))


def _fresh_process(cache: str, clip: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        f"""
        import json, os
        os.environ["NUMBA_CACHE_DIR"] = {cache!r}
        from tests.test_numba_cache import _compute
        print(json.dumps(_compute({clip!r})))
        """
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    return run_command(
        [sys.executable, "-c", code],
        env=env,
        timeout=600,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )


@pytest.mark.timeout(1500)
def test_processes_compiling_at_once_leave_a_cache_that_loads(tmp_path):
    import json

    import numpy as np

    context = multiprocessing.get_context("spawn")
    for round_number in range(ROUNDS):
        cache = tmp_path / f"numba-{round_number}"
        cache.mkdir()
        clip = str(tmp_path / f"clip-{round_number}.wav")
        _write_clip(clip)
        barrier = context.Barrier(PROCESSES)
        results = context.Queue()
        racers = [
            context.Process(target=_racer, args=(str(cache), clip, barrier, results))
            for _ in range(PROCESSES)
        ]
        try:
            for racer in racers:
                racer.start()
            computed = []
            while len(computed) < PROCESSES and (
                any(r.is_alive() for r in racers) or not results.empty()
            ):
                try:  # read while they run: a process with unread queue data cannot exit
                    computed.append(results.get(timeout=5))
                except queue.Empty:
                    pass
            for racer in racers:
                racer.join(timeout=60)
        finally:  # a racer still running (hung, or the test failed or timed out) is stopped
            for racer in racers:
                if racer.is_alive():
                    racer.kill()
                    racer.join(timeout=10)
        assert [r.exitcode for r in racers] == [0] * PROCESSES, f"round {round_number}"
        assert any(cache.rglob("*.nbc")), "the processes wrote no numba cache"

        fresh = _fresh_process(str(cache), clip)
        assert fresh.returncode == 0, (
            f"round {round_number}: a fresh process crashed loading the cache "
            f"(exit {fresh.returncode}): {fresh.stderr[-2000:]}"
        )
        loaded = json.loads(fresh.stdout.strip().splitlines()[-1])
        for racer_result in computed:
            np.testing.assert_array_equal(loaded[0], racer_result[0])
            np.testing.assert_array_equal(loaded[1], racer_result[1])
