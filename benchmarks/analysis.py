"""Benchmark 3, clip analysis: frames per second and shot-cut F1 of our analysis
against PySceneDetect's content detector, on generated clips and on real ones.

Usage: python -m benchmarks.analysis [--quick] [--workdir DIR]

Ours: probe_media and analyze_clip with no cache, so each run decodes. Theirs:
scenedetect.detect(path, ContentDetector()) with its defaults (OpenCV backend).
Both run in this process, one after the other per clip, once untimed and then
alternating; the fastest run of each counts. Generated clips (tests/media.py
marker clips) have known cuts; the real reel joins whole real clips re-encoded at
one size, so its joins are known cuts, and so are the cuts inside two of the
clips (found by looking, listed in REAL_CLIP_CUTS_FRAMES). A cut found within
TOLERANCE_FRAMES of a true one is a hit; F1 counts every clip of a group.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from benchmarks.common import Result, run_alone
from engine.analysis import analyze_clip
from engine.probe import probe_media
from tests.media import write_marker_clip

NAME = "analysis"
SPEED_RATIO = 2.0
# A few frames: PySceneDetect places a cut on the frame its score rises on.
TOLERANCE_FRAMES = 2
REEL_FPS = 25
# Shots at least this long: PySceneDetect's min_scene_len is 15 frames.
MIN_SHOT_FRAMES = 20
# Cuts inside the real clips, by decoded frame index, found by looking at the
# frames around every large change. Fast motion in bikes.mp4 (2.7-3.0 s and
# 3.9-4.2 s) and the bird turning away in cockatoo.mp4 (frame 157) are no cuts.
REAL_CLIP_CUTS_FRAMES = {
    "bikes.mp4": (30, 76, 137, 187, 242),
    "cityCC0.mpg": (116,),
}
REAL_CLIP_SUFFIXES = {".mp4", ".mov", ".mpg", ".mkv", ".webm", ".avi"}


@dataclass(frozen=True)
class Truth:
    """A clip and the frame indices that start its shots (after the first)."""

    path: Path
    frames: int
    cuts: list[int]


@dataclass(frozen=True)
class Sizes:
    generated: tuple[tuple[tuple[int, int], int, int], ...]  # size, frames, clips
    real_size: tuple[int, int]
    # Frames taken from the start of each real clip; 0 for all of it.
    real_max_frames: int
    repeats: int


FULL = Sizes(
    generated=(((640, 360), 300, 4), ((1920, 1080), 250, 3)),
    real_size=(1280, 720),
    real_max_frames=0,
    repeats=3,
)
QUICK = Sizes(
    generated=(((640, 360), 60, 1), ((1920, 1080), 45, 1)),
    real_size=(640, 360),
    real_max_frames=30,
    repeats=1,
)


@dataclass
class Tally:
    """Frames, best seconds and cut matches of one detector over a group."""

    frames: int = 0
    seconds: float = 0.0
    hits: int = 0
    found: int = 0
    truth: int = 0

    def add(self, truth: Truth, seconds: float, found: list[int]) -> None:
        self.frames += truth.frames
        self.seconds += seconds
        self.hits += count_hits(truth.cuts, found, TOLERANCE_FRAMES)
        self.found += len(found)
        self.truth += len(truth.cuts)

    def merge(self, other: Tally) -> None:
        self.frames += other.frames
        self.seconds += other.seconds
        self.hits += other.hits
        self.found += other.found
        self.truth += other.truth

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def f1(self) -> float:
        precision = self.hits / self.found if self.found else 1.0
        recall = self.hits / self.truth if self.truth else 1.0
        total = precision + recall
        return 2 * precision * recall / total if total else 0.0

    def describe(self) -> str:
        return (
            f"{self.hits} of {self.truth} cuts, "
            f"{self.found - self.hits} false; {self.frames} frames"
        )


def run(workdir: Path, quick: bool) -> list[Result]:
    """Both detectors on each group of clips; a speed and an F1 row per group."""
    if importlib.util.find_spec("scenedetect") is None:
        return [_skipped("PySceneDetect is not installed (make bench-deps)")]
    sizes = QUICK if quick else FULL
    workdir = workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    rows = _generated_rows(workdir, sizes)

    media = os.environ.get("MONTAGE_AI_REAL_MEDIA", "")
    clips_dir = Path(media) / "video"
    if not media or not clips_dir.is_dir():
        rows.append(_skipped(f"real media not found (MONTAGE_AI_REAL_MEDIA={media!r})"))
        return rows
    reel = _real_reel(workdir, clips_dir, sizes)
    tallies = _compare([reel], sizes.repeats)
    label = f"real reel {sizes.real_size[0]}x{sizes.real_size[1]}"
    return [
        *rows,
        _speed_row(label, tallies, 1, sizes.repeats),
        _f1_row(label, tallies),
    ]


def _generated_rows(workdir: Path, sizes: Sizes) -> list[Result]:
    """A speed row per size of generated clip, one F1 row for them all."""
    rows: list[Result] = []
    every = {who: Tally() for who in DETECTORS}
    for size, frames, count in sizes.generated:
        clips = [
            _generated_clip(workdir, size, frames, number) for number in range(count)
        ]
        tallies = _compare(clips, sizes.repeats)
        label = f"generated {size[0]}x{size[1]}"
        rows.append(_speed_row(label, tallies, len(clips), sizes.repeats))
        for who, tally in tallies.items():
            every[who].merge(tally)
    rows.append(_f1_row("generated", every))
    return rows


def _skipped(why: str) -> Result:
    return Result(NAME, "skipped", 0.0, None, "", "-", None, note=why)


# The detectors


def our_cuts(path: Path) -> list[int]:
    """Frame indices of the cuts our analysis finds (probe included)."""
    info = probe_media(path)
    analysis = analyze_clip(info, use_cache=False)
    fps = float(info.fps_fraction)
    return [round(shot.start_sec * fps) for shot in analysis.shots[1:]]


def their_cuts(path: Path) -> list[int]:
    """Frame indices of the cuts PySceneDetect's content detector finds."""
    from scenedetect import ContentDetector, detect

    scenes = detect(str(path), ContentDetector())
    return [int(start.frame_num) for start, _ in scenes[1:]]


DETECTORS: dict[str, Callable[[Path], list[int]]] = {
    "ours": our_cuts,
    "theirs": their_cuts,
}


def _compare(clips: list[Truth], repeats: int) -> dict[str, Tally]:
    """Per clip: each detector once untimed, then alternating timed runs."""
    tallies = {who: Tally() for who in DETECTORS}
    for truth in clips:
        found = {who: detect(truth.path) for who, detect in DETECTORS.items()}
        best = dict.fromkeys(DETECTORS, float("inf"))
        for _ in range(repeats):
            for who, detect in DETECTORS.items():
                started = time.perf_counter()
                detect(truth.path)
                best[who] = min(best[who], time.perf_counter() - started)
        for who, tally in tallies.items():
            tally.add(truth, best[who], found[who])
    return tallies


def count_hits(truth: list[int], found: list[int], tolerance: int) -> int:
    """True cuts with a found cut within tolerance frames, each found cut used once."""
    unused = sorted(found)
    hits = 0
    for cut in sorted(truth):
        near = [frame for frame in unused if abs(frame - cut) <= tolerance]
        if near:
            unused.remove(min(near, key=lambda frame: abs(frame - cut)))
            hits += 1
    return hits


# The rows


def _speed_row(
    label: str, tallies: dict[str, Tally], clips: int, repeats: int
) -> Result:
    ours, theirs = tallies["ours"], tallies["theirs"]
    return Result(
        NAME,
        f"{label}: frames per second",
        ours.fps,
        theirs.fps,
        "fps",
        f"ratio >= {SPEED_RATIO:.1f}",
        ours.fps >= SPEED_RATIO * theirs.fps,
        reference_name="PySceneDetect",
        note=(
            f"{ours.frames} frames in {clips} clip(s), best of {repeats}: "
            f"ours {ours.seconds:.2f} s, PySceneDetect {theirs.seconds:.2f} s"
        ),
    )


def _f1_row(label: str, tallies: dict[str, Tally]) -> Result:
    ours, theirs = tallies["ours"], tallies["theirs"]
    return Result(
        NAME,
        f"{label}: cut F1 (+-{TOLERANCE_FRAMES} frames)",
        ours.f1,
        theirs.f1,
        "",
        "ours >= theirs",
        ours.f1 >= theirs.f1,
        reference_name="PySceneDetect",
        note=f"ours {ours.describe()}; PySceneDetect {theirs.describe()}",
    )


# The media


def _generated_clip(
    workdir: Path, size: tuple[int, int], frames: int, number: int
) -> Truth:
    """A marker clip with 5 to 10 cuts (fewer when short) at random places."""
    rng = random.Random(f"{size}-{frames}-{number}")
    most = max(1, frames // MIN_SHOT_FRAMES - 1)
    cuts = _random_cuts(rng, frames, rng.randint(min(5, most), min(10, most)))
    path = workdir / f"generated-{size[0]}x{size[1]}-{frames}f-{number}.mp4"
    if not path.exists():
        partial = path.with_suffix(".partial.mp4")
        write_marker_clip(partial, frames=frames, fps=REEL_FPS, size=size, cuts=cuts)
        partial.rename(path)
    return Truth(path, frames, cuts)


def _random_cuts(rng: random.Random, frames: int, count: int) -> list[int]:
    """count cuts, no two shots shorter than MIN_SHOT_FRAMES."""
    slack = frames - (count + 1) * MIN_SHOT_FRAMES
    extra = sorted(rng.randint(0, slack) for _ in range(count))
    return [(number + 1) * MIN_SHOT_FRAMES + extra[number] for number in range(count)]


def _real_reel(workdir: Path, clips_dir: Path, sizes: Sizes) -> Truth:
    """Every real clip, in name order, one after another in one file."""
    width, height = sizes.real_size
    path = workdir / f"real-reel-{width}x{height}-{sizes.real_max_frames}.mp4"
    truth_path = path.with_suffix(".json")
    if path.exists() and truth_path.exists():
        data = json.loads(truth_path.read_text())
        return Truth(path, data["frames"], data["cuts"])
    clips = sorted(
        clip for clip in clips_dir.iterdir() if clip.suffix in REAL_CLIP_SUFFIXES
    )
    partial = path.with_suffix(".partial.mp4")
    frames, cuts = _write_reel(clips, partial, sizes)
    partial.rename(path)
    truth_path.write_text(json.dumps({"frames": frames, "cuts": cuts}))
    return Truth(path, frames, cuts)


def _write_reel(clips: list[Path], path: Path, sizes: Sizes) -> tuple[int, list[int]]:
    """Each clip's frames scaled to one size at REEL_FPS, frame for frame.

    Returns the reel's frame count and its cuts: each join and each known cut
    inside a clip.
    """
    width, height = sizes.real_size
    cuts: list[int] = []
    index = 0
    with av.open(str(path), "w") as reel:
        stream = reel.add_stream("libx264", rate=REEL_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for clip in clips:
            inside = REAL_CLIP_CUTS_FRAMES.get(clip.name, ())
            with av.open(str(clip)) as source:
                for taken, frame in enumerate(source.decode(video=0)):
                    if sizes.real_max_frames and taken >= sizes.real_max_frames:
                        break
                    if index and (taken == 0 or taken in inside):
                        cuts.append(index)
                    picture = frame.reformat(width, height, "yuv420p")
                    picture.pts, picture.time_base = index, Fraction(1, REEL_FPS)
                    picture.pict_type = av.video.frame.PictureType.NONE
                    reel.mux(stream.encode(picture))
                    index += 1
        reel.mux(stream.encode(None))
    return index, cuts


def main(argv: list[str] | None = None) -> int:
    return run_alone(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
