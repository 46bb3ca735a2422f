"""Benchmark 6, scale: the engine's total time for one montage from 10, 50 and
200 clips, beside the clips' total length.

Usage: python -m benchmarks.scale [--quick] [--workdir DIR]

The clips are generated marker clips of one length, each with its own cuts (so
no two share content and none is found in another's cache entry). Each count
runs one engine process with a fresh cache (numba's compiled functions shared
and warm, as after install) rendering the same montage from the same song. The
time per second of input should not grow with the count, in all and in the
stages that work per clip (probe, clips, plan), whose events say where the time
goes.
"""

from __future__ import annotations

import itertools
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    Result,
    engine_env,
    run_alone,
    run_engine_job,
    warm_numba,
)
from tests.media import write_marker_clip
from tests.song_media import write_drums

NAME = "scale"
GROWTH_TARGET = 1.0
# The stages whose work is per clip: linear in the input, noise aside.
PER_CLIP_STAGES = ("probe", "clips", "plan")
PER_CLIP_GROWTH_TARGET = 1.10
CLIP_FPS = 25
SONG_BPM = 124.0
STAGES = ("probe", "music", "clips", "plan", "render", "export")


@dataclass(frozen=True)
class Sizes:
    counts: tuple[int, ...]
    clip_frames: int
    clip_size: tuple[int, int]
    cuts_per_clip: int
    min_shot_frames: int
    montage_sec: int
    montage_size: tuple[int, int]
    song_sec: int


FULL = Sizes(
    counts=(10, 50, 200),
    clip_frames=100,
    clip_size=(640, 360),
    cuts_per_clip=2,
    min_shot_frames=20,
    montage_sec=30,
    montage_size=(1280, 720),
    song_sec=60,
)
QUICK = Sizes(
    counts=(2, 4, 8),
    clip_frames=40,
    clip_size=(320, 180),
    cuts_per_clip=1,
    min_shot_frames=12,
    montage_sec=4,
    montage_size=(320, 180),
    song_sec=10,
)


def run(workdir: Path, quick: bool) -> list[Result]:
    """One engine process per count; a time row each, then the growth row."""
    sizes = QUICK if quick else FULL
    workdir = workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    warm_numba(workdir / "numba", workdir / "warm-up.log")
    song = workdir / f"song-{sizes.song_sec}s.mp3"
    if not song.exists():
        write_drums(song, tempos=[(SONG_BPM, sizes.song_sec)])
    clips = _write_clips(workdir / "clips", sizes)

    rows: list[Result] = []
    per_input: dict[int, float] = {}
    per_clip_work: dict[int, float] = {}
    for count in sizes.counts:
        length_sec = count * sizes.clip_frames / CLIP_FPS
        wall_sec, stages, note = _montage(workdir, clips[:count], song, sizes)
        per_input[count] = wall_sec / length_sec
        work_sec = sum(stages.get(stage, 0.0) for stage in PER_CLIP_STAGES)
        per_clip_work[count] = work_sec / length_sec
        rows.append(
            Result(
                NAME,
                f"total time, {count} clips",
                wall_sec,
                length_sec,
                "s",
                "-",
                None,
                reference_name="the clips' length",
                note=note,
            )
        )
    rows.append(_growth_row("total time", per_input, GROWTH_TARGET))
    stages = "+".join(PER_CLIP_STAGES)
    rows.append(_growth_row(stages, per_clip_work, PER_CLIP_GROWTH_TARGET))
    return rows


def _growth_row(what: str, per_input: dict[int, float], target: float) -> Result:
    """The figure per second of input at the largest count against the smallest."""
    fewest, most = min(per_input), max(per_input)
    figures = ", ".join(f"{n} clips {value:.3f}" for n, value in per_input.items())
    return Result(
        NAME,
        f"{what} per input second, {most} clips vs {fewest}",
        per_input[most],
        per_input[fewest],
        "s/s",
        f"ratio <= {target:.2f}",
        per_input[most] <= target * per_input[fewest],
        reference_name=f"{fewest} clips",
        note=f"{figures} s per second of input",
    )


def _write_clips(folder: Path, sizes: Sizes) -> list[Path]:
    """As many clips as the largest count, each with its own cut frames."""
    folder.mkdir(parents=True, exist_ok=True)
    count = max(sizes.counts)
    cut_sets = _distinct_cuts(sizes, count)
    paths = []
    for number, cuts in enumerate(cut_sets):
        path = folder / f"clip-{number:03d}.mp4"
        if not path.exists():
            partial = path.with_suffix(".partial.mp4")
            write_marker_clip(
                partial,
                frames=sizes.clip_frames,
                fps=CLIP_FPS,
                size=sizes.clip_size,
                cuts=cuts,
            )
            partial.rename(path)
        paths.append(path)
    return paths


def _distinct_cuts(sizes: Sizes, count: int) -> list[list[int]]:
    """count different sets of cuts, no shot shorter than min_shot_frames."""
    shortest = sizes.min_shot_frames
    frames = range(shortest, sizes.clip_frames - shortest + 1)
    choices = [
        list(cuts)
        for cuts in itertools.combinations(frames, sizes.cuts_per_clip)
        if all(b - a >= shortest for a, b in itertools.pairwise(cuts))
    ]
    if len(choices) < count:
        raise ValueError(f"only {len(choices)} distinct clips for {count}")
    random.Random(6).shuffle(choices)
    return choices[:count]


def _montage(
    workdir: Path, clips: list[Path], song: Path, sizes: Sizes
) -> tuple[float, dict[str, float], str]:
    """One engine process with a fresh cache; its wall time and its stages."""
    count = len(clips)
    cache = workdir / f"cache-{count}"
    shutil.rmtree(cache, ignore_errors=True)
    job = {
        "clips": [str(clip) for clip in clips],
        "music": str(song),
        "output": str(workdir / f"montage-{count}.mp4"),
        "duration_sec": sizes.montage_sec,
        "quality": "preview",
        "size": list(sizes.montage_size),
        "seed": 1,
    }
    env = engine_env(cache, workdir / "numba")
    engine = run_engine_job(job, workdir / f"job-{count}.json", env)
    parts = [
        f"{stage} {engine.stages[stage]:.2f}"
        for stage in STAGES
        if stage in engine.stages
    ]
    note = (
        f"{', '.join(parts)}, start-up and exit {engine.other_sec:.1f} s; "
        f"peak {engine.peak_mb:.0f} MB"
    )
    return engine.wall_sec, engine.stages, note


def main(argv: list[str] | None = None) -> int:
    return run_alone(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
