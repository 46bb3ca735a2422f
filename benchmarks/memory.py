"""Benchmark 2, memory: the engine's peak resident memory for a 1080p render from
a 1-minute, a 10-minute and a 60-minute 1080p source.

Usage: python -m benchmarks.memory [--quick] [--workdir DIR]

The sources are one encoded period (1080p at a low frame rate, real GOPs, two
cuts) copied packet by packet with later timestamps, so the long ones cost no
encoding. The song is analysed first in its own process, measured too: it stands
for the child the engine spawns for a song it has not analysed. The renders then
find it cached and differ only in their source. Each render is its own engine
process, its peak from wait4. Reference: the shortest source's figure, so the
ratio shows whether memory stays flat.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    Result,
    check_exit,
    engine_env,
    python,
    run_alone,
    run_engine_job,
    run_measured,
    warm_numba,
)
from tests.input_media import write_repeated_copy
from tests.media import write_marker_clip
from tests.song_media import write_drums

NAME = "memory"
SIZE = (1920, 1080)
FLAT_RATIO = 1.10
LIMIT_MB = 500.0
TARGET = f"flat (ratio <= {FLAT_RATIO:.2f}) and < {LIMIT_MB:.0f} MB"
SONG_BPM = 120.0


@dataclass(frozen=True)
class Sizes:
    """The encoded period, how often each source repeats it, the montage."""

    period_sec: int
    source_fps: int
    gop_frames: int
    copies: tuple[int, ...]
    montage_sec: int
    song_sec: int


FULL = Sizes(
    period_sec=60,
    source_fps=10,
    gop_frames=20,
    copies=(1, 10, 60),
    montage_sec=25,
    song_sec=180,
)
# The longest quick source still passes the analysis's keyframe-skim length.
QUICK = Sizes(
    period_sec=4,
    source_fps=5,
    gop_frames=10,
    copies=(1, 10, 60),
    montage_sec=3,
    song_sec=20,
)


def run(workdir: Path, quick: bool) -> list[Result]:
    """Analyse the song, then render from each source in its own process."""
    sizes = QUICK if quick else FULL
    workdir = workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    warm_numba(workdir / "numba", workdir / "warm-up.log")
    # A fresh cache: the song and every source are analysed in this run.
    shutil.rmtree(workdir / "cache", ignore_errors=True)
    env = engine_env(workdir / "cache", workdir / "numba")
    song = workdir / f"song-{sizes.song_sec}s.mp3"
    if not song.exists():
        write_drums(song, tempos=[(SONG_BPM, sizes.song_sec)])
    music_log = workdir / "music.log"
    music = run_measured(
        [python(), "-m", "engine.cli", "analyze", str(song)], music_log, env
    )
    check_exit(music, "the song's analysis", music_log)

    period = _write_period(workdir, sizes)
    rows: list[Result] = []
    reference_mb: float | None = None
    for copies in sizes.copies:
        length_sec = copies * sizes.period_sec
        source = _long_source(workdir, period, copies, length_sec)
        peak_mb, note = _render(workdir, source, song, sizes, env)
        reference_mb = reference_mb or peak_mb
        rows.append(_row(length_sec, peak_mb, reference_mb, sizes, note))
    rows.append(_music_row(music.peak_mb, music.wall_sec, sizes.song_sec))
    return rows


def _write_period(workdir: Path, sizes: Sizes) -> Path:
    """The encoded period: 1080p, a cut at each third, keyframes every GOP."""
    frames = sizes.period_sec * sizes.source_fps
    period = workdir / f"period-{sizes.period_sec}s.mp4"
    if not period.exists():
        print(f"generating {sizes.period_sec} s of {SIZE[1]}p...", flush=True)
        partial = period.with_suffix(".partial.mp4")
        write_marker_clip(
            partial,
            frames=frames,
            fps=sizes.source_fps,
            size=SIZE,
            cuts=[frames // 3, 2 * frames // 3],
            gop=sizes.gop_frames,
        )
        partial.rename(period)
    return period


def _long_source(workdir: Path, period: Path, copies: int, length_sec: int) -> Path:
    if copies == 1:
        return period
    source = workdir / f"source-{length_sec}s.mp4"
    if not source.exists():
        partial = source.with_suffix(".partial.mp4")
        period_sec = length_sec / copies
        write_repeated_copy(period, partial, copies=copies, period_sec=period_sec)
        partial.rename(source)
    return source


def _render(
    workdir: Path, source: Path, song: Path, sizes: Sizes, env: dict[str, str]
) -> tuple[float, str]:
    """One engine process rendering a final 1080p montage; its peak and a note."""
    name = source.stem
    job = {
        "clips": [str(source)],
        "music": str(song),
        "output": str(workdir / f"montage-{name}.mp4"),
        "duration_sec": sizes.montage_sec,
        "quality": "final",
        "size": list(SIZE),
        "seed": 1,
    }
    engine = run_engine_job(job, workdir / f"job-{name}.json", env)
    note = (
        f"{engine.wall_sec:.0f} s wall: clips {engine.stages.get('clips', 0):.1f} s, "
        f"render {engine.stages.get('render', 0):.1f} s "
        f"({source.stat().st_size / 2**20:.0f} MB source)"
    )
    return engine.peak_mb, note


def _row(
    length_sec: int, peak_mb: float, reference_mb: float, sizes: Sizes, note: str
) -> Result:
    flat = peak_mb <= FLAT_RATIO * reference_mb
    return Result(
        NAME,
        f"peak RSS, {sizes.montage_sec} s final {SIZE[1]}p from {_length(length_sec)}",
        peak_mb,
        reference_mb,
        "MB",
        TARGET,
        flat and peak_mb < LIMIT_MB,
        reference_name=f"from {_length(sizes.copies[0] * sizes.period_sec)}",
        note=note,
    )


def _music_row(peak_mb: float, wall_sec: float, song_sec: int) -> Result:
    return Result(
        NAME,
        f"peak RSS, song analysis process ({song_sec} s MP3)",
        peak_mb,
        None,
        "MB",
        "-",
        None,
        note=(
            f"{wall_sec:.1f} s; the engine runs this in a child process for a song "
            "not yet analysed, so its memory is gone before the render starts"
        ),
    )


def _length(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def main(argv: list[str] | None = None) -> int:
    return run_alone(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
