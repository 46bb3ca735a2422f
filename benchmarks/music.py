"""Benchmark 4, music analysis of a 3-minute song: the first run after install,
and a run that finds its analysis cached.

Usage: python -m benchmarks.music [--quick] [--workdir DIR]

Each run is a fresh process, `python -m engine.cli analyze SONG`, with its own
cache folder. "After install": `montage-ai warm-up` has filled the folder's
numba cache (untimed), the song is not analysed yet. "Cached": the same song
again. Reference: librosa's own librosa.load and librosa.beat.beat_track in a
fresh process with the same, warm numba cache (one untimed run first, so that
librosa's own functions are compiled too). The first run on an empty cache, no
warm-up, is printed for information: what install spares the first job.
"""

from __future__ import annotations

import re
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    Result,
    check_exit,
    engine_env,
    python,
    run_alone,
    run_measured,
    warm_numba,
)
from tests.song_media import write_drums

NAME = "music"
FIRST_TARGET_SEC = 5.0
CACHED_TARGET_SEC = 1.0
SONG_BPM = 124.0
LIBROSA_CODE = """
import sys
import librosa
samples, sr = librosa.load(sys.argv[1])
tempo, beats = librosa.beat.beat_track(y=samples, sr=sr)
print(tempo, len(beats))
"""
ANALYSED_LOG = re.compile(r"Analysed .* in ([0-9.]+) s")


def run(workdir: Path, quick: bool) -> list[Result]:
    """Time each state of the cache in its own processes; a row per state."""
    song_sec, repeats = (30, 1) if quick else (180, 3)
    workdir = workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    song = workdir / f"song-{song_sec}s.mp3"
    if not song.exists():
        write_drums(song, tempos=[(SONG_BPM, song_sec)])
    label = f"{song_sec // 60} min" if song_sec >= 60 else f"{song_sec} s"

    # After install: a warm numba cache, no analysis cached.
    installed = workdir / "installed"
    shutil.rmtree(installed, ignore_errors=True)
    warm_numba(installed / "numba", workdir / "warm-up.log")
    firsts = [
        _analyze(song, installed, workdir / f"first-{attempt}.log", fresh=True)
        for attempt in range(repeats)
    ]
    cached = [
        _analyze(song, installed, workdir / f"cached-{attempt}.log", fresh=False)
        for attempt in range(repeats)
    ]
    _librosa(song, installed, workdir / "librosa-untimed.log")
    librosa = [
        _librosa(song, installed, workdir / f"librosa-{attempt}.log")
        for attempt in range(repeats)
    ]
    empty = workdir / "empty"
    shutil.rmtree(empty, ignore_errors=True)
    cold = _analyze(song, empty, workdir / "empty-cache.log", fresh=True)

    reference = _median(librosa)
    return [
        _row(
            f"{label} MP3, first run after install", firsts, reference, FIRST_TARGET_SEC
        ),
        _row(f"{label} MP3, cached", cached, reference, CACHED_TARGET_SEC),
        _row(f"{label} MP3, first run on an empty cache", [cold], reference, None),
    ]


@dataclass(frozen=True)
class Timed:
    """One process: its wall time, its peak, and the analysis it logged."""

    wall_sec: float
    peak_mb: float
    analysis_sec: float | None


def _analyze(song: Path, root: Path, log_path: Path, fresh: bool) -> Timed:
    """One `montage-ai analyze` process; fresh drops the cached analysis first."""
    if fresh:
        shutil.rmtree(root / "music", ignore_errors=True)
    command = [python(), "-m", "engine.cli", "-v", "analyze", str(song)]
    measured = run_measured(command, log_path, engine_env(root))
    check_exit(measured, "montage-ai analyze", log_path)
    logged = ANALYSED_LOG.search(log_path.read_text(errors="replace"))
    analysis_sec = float(logged.group(1)) if logged else None
    return Timed(measured.wall_sec, measured.peak_mb, analysis_sec)


def _librosa(song: Path, root: Path, log_path: Path) -> Timed:
    command = [python(), "-c", LIBROSA_CODE, str(song)]
    measured = run_measured(command, log_path, engine_env(root))
    check_exit(measured, "librosa's beat tracker", log_path)
    return Timed(measured.wall_sec, measured.peak_mb, None)


def _median(runs: list[Timed]) -> float:
    return statistics.median(run.wall_sec for run in runs)


def _row(
    measure: str, runs: list[Timed], reference_sec: float, target_sec: float | None
) -> Result:
    wall_sec = _median(runs)
    times = ", ".join(f"{run.wall_sec:.2f}" for run in runs)
    inside = [run.analysis_sec for run in runs if run.analysis_sec is not None]
    note = (
        f"median of {len(runs)} ({times} s), peak {max(r.peak_mb for r in runs):.0f} MB"
    )
    if inside:
        note += (
            f"; {statistics.median(inside):.2f} s of it in the logged analysis "
            "(decode, librosa's import and numba's load, beats), the rest the "
            "interpreter and the engine's imports"
        )
    return Result(
        NAME,
        measure,
        wall_sec,
        reference_sec,
        "s",
        "-" if target_sec is None else f"< {target_sec:.0f} s",
        None if target_sec is None else wall_sec < target_sec,
        reference_name="librosa load + beat_track",
        note=note,
    )


def main(argv: list[str] | None = None) -> int:
    return run_alone(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
