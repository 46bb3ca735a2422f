"""Render speed: our engine against the ffmpeg command line rendering the same cut
list from the real clips, at preview and at final quality, 1080p.

Usage: python -m benchmarks.render [--quick] [--workdir DIR]

Each quality is rendered once untimed, so that the music and clip analysis caches
are warm and the timed runs measure the render. The ffmpeg command is built from
the .otio timeline the engine wrote beside its MP4: per shot, seek to its source
in-point, trim by frames, shape (the engine's own scale, crop or pad and grade
filters), resample to the timeline's rate; one concat; the song trimmed and faded
as the engine does; the same libx264 preset, CRF, size and frame rate. Runs of
ours and ffmpeg's alternate, and the fastest of each counts.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import opentimelineio as otio

from benchmarks.common import (
    Result,
    check_exit,
    engine_env,
    python,
    run_alone,
    run_measured,
    stage_durations,
)
from engine.frames import FrameTransform
from engine.placements import read_placements
from engine.render import AUDIO_BITRATE, AUDIO_RATE, QUALITY_SETTINGS
from engine.timeline import META, timeline_rate

NAME = "render"
SONG = "Sean Hawk - In Rome.ogg"
SIZE = (1920, 1080)
TARGET_RATIO = 1.10
TARGET = f"ratio <= {TARGET_RATIO:.2f}"


@dataclass(frozen=True)
class Timed:
    """The best of a few runs: the whole engine process and its render stage."""

    wall_sec: float
    render_sec: float | None


def run(workdir: Path, quick: bool) -> list[Result]:
    """Time both qualities; a table row per figure."""
    media = os.environ.get("MONTAGE_AI_REAL_MEDIA", "")
    clips, song = Path(media) / "video", Path(media) / "music" / SONG
    if not media or not clips.is_dir() or not song.is_file():
        return [_skipped(f"real media not found (MONTAGE_AI_REAL_MEDIA={media!r})")]
    if shutil.which("ffmpeg") is None:
        return [_skipped("ffmpeg is not installed (make bench-deps)")]
    workdir.mkdir(parents=True, exist_ok=True)
    duration_sec, repeats = (8, 1) if quick else (30, 2)
    results: list[Result] = []
    for quality in ("preview", "final"):
        results += _compare(workdir, clips, song, quality, duration_sec, repeats)
    return results


def _skipped(why: str) -> Result:
    return Result(NAME, "skipped", 0.0, None, "s", TARGET, None, note=why)


def _compare(
    workdir: Path,
    clips: Path,
    song: Path,
    quality: str,
    duration_sec: float,
    repeats: int,
) -> list[Result]:
    """Warm the caches, then alternate timed runs of ours and of ffmpeg."""
    ours_mp4 = workdir / f"ours-{quality}.mp4"
    ffmpeg_mp4 = workdir / f"ffmpeg-{quality}.mp4"
    job = _write_job(workdir, clips, song, quality, duration_sec, ours_mp4)
    _run_engine(job, workdir, f"warm-{quality}")
    timeline = otio.adapters.read_from_file(str(ours_mp4.with_suffix(".otio")))
    command = ffmpeg_command(timeline, ffmpeg_mp4)
    (workdir / f"ffmpeg-{quality}.sh").write_text(_shell_line(command) + "\n")

    ours: list[Timed] = []
    reference: list[float] = []
    for attempt in range(repeats):
        ours.append(_run_engine(job, workdir, f"ours-{quality}-{attempt}"))
        reference.append(_run_ffmpeg(command, workdir / f"ffmpeg-{quality}.log"))
    best_wall = min(timed.wall_sec for timed in ours)
    best_reference = min(reference)
    render_times = [t.render_sec for t in ours if t.render_sec is not None]
    label = f"{quality} {SIZE[1]}p"
    settings = QUALITY_SETTINGS[quality]
    note = (
        f"{timeline_rate(timeline)} fps, {len(timeline.video_tracks()[0])} shots, "
        f"libx264 {settings['preset']} CRF {settings['crf']}; best of {repeats}"
    )
    rows = [
        _time_row(f"{label}: engine wall time", best_wall, best_reference, note),
    ]
    if render_times:
        rows.append(
            _time_row(f"{label}: render stage", min(render_times), best_reference, "")
        )
    rows.append(_frames_row(label, ours_mp4, ffmpeg_mp4))
    return rows


def _time_row(measure: str, ours: float, reference: float, note: str) -> Result:
    return Result(
        NAME,
        measure,
        ours,
        reference,
        "s",
        TARGET,
        ours / reference <= TARGET_RATIO,
        reference_name="ffmpeg",
        note=note,
    )


def _write_job(
    workdir: Path,
    clips: Path,
    song: Path,
    quality: str,
    duration_sec: float,
    output: Path,
) -> Path:
    # NOTE: seed 1 of the dynamic style cuts only: the reference has no transitions.
    job = {
        "clips": [str(clips)],
        "music": str(song),
        "output": str(output),
        "duration_sec": duration_sec,
        "quality": quality,
        "size": list(SIZE),
        "style": "dynamic",
        "seed": 1,
    }
    path = workdir / f"job-{quality}.json"
    path.write_text(json.dumps(job))
    return path


def _run_engine(job: Path, workdir: Path, name: str) -> Timed:
    """One engine process; its render stage is timed by its own stage events."""
    log_path = workdir / f"{name}.log"
    measured = run_measured(
        [python(), "-m", "engine", str(job)], log_path, engine_env(workdir / "cache")
    )
    check_exit(measured, "the engine", log_path)
    return Timed(measured.wall_sec, stage_durations(log_path).get("render"))


def _run_ffmpeg(command: list[str], log_path: Path) -> float:
    measured = run_measured(command, log_path)
    check_exit(measured, "ffmpeg", log_path)
    return measured.wall_sec


def ffmpeg_command(timeline: otio.schema.Timeline, output: Path) -> list[str]:
    """The ffmpeg command line that renders this timeline's cut list and song."""
    meta = timeline.metadata[META]
    fps = timeline_rate(timeline)
    width, height = int(meta["width"]), int(meta["height"])
    placements, joins = read_placements(timeline)
    if joins:
        raise ValueError("the reference renders cuts only; this timeline has joins")
    transform = FrameTransform(width, height, meta["fit"], meta["grade"], fps=fps)
    facts = [
        clip.media_reference.metadata[META]
        for clip in timeline.video_tracks()[0].find_clips()
    ]
    inputs: list[str] = []
    graph: list[str] = []
    for index, (placement, source) in enumerate(zip(placements, facts, strict=True)):
        shown_frames = placement.record_end - placement.record_start
        # Source frames the shot spans, and two more for the rate conversion.
        source_frames = math.floor(shown_frames / fps * placement.rate) + 2
        inputs += [
            "-noautorotate",
            "-ss",
            f"{placement.source_in_sec:.6f}",
            "-t",
            f"{float(source_frames / placement.rate):.6f}",
            "-i",
            placement.path,
        ]
        chain = transform.filters(
            int(source["width"]),
            int(source["height"]),
            placement.rotation,
            placement.sample_aspect,
        )
        shaped = ",".join(f"{name}={args}" if args else name for name, args in chain)
        graph.append(
            f"[{index}:v]trim=end_frame={source_frames},setpts=PTS-STARTPTS,"
            f"{shaped},fps={fps},trim=end_frame={shown_frames},"
            f"setpts=PTS-STARTPTS[v{index}]"
        )
    shots = len(placements)
    graph.append(
        "".join(f"[v{index}]" for index in range(shots))
        + f"concat=n={shots}:v=1:a=0[video]"
    )
    graph.append(_audio_filters(timeline, shots))
    settings = QUALITY_SETTINGS[meta["quality"]]
    return [
        *("ffmpeg", "-nostdin", "-y", "-v", "error"),
        *inputs,
        *("-i", timeline.audio_tracks()[0][0].media_reference.target_url),
        *("-filter_complex", ";".join(graph), "-map", "[video]", "-map", "[audio]"),
        *("-c:v", "libx264", "-preset", settings["preset"], "-crf", settings["crf"]),
        *("-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-r", str(fps)),
        *("-c:a", "aac", "-b:a", str(AUDIO_BITRATE), "-ar", str(AUDIO_RATE)),
        *("-ac", "2", "-movflags", "+faststart", str(output)),
    ]


def _audio_filters(timeline: otio.schema.Timeline, song_input: int) -> str:
    """The song from the analysed start, for the picture's length, faded as ours."""
    meta = timeline.metadata[META]
    start_sec = float(meta["music"]["start_sec"])
    duration_sec = float(Fraction(int(meta["total_frames"])) / timeline_rate(timeline))
    fade_out_sec = float(timeline.audio_tracks()[0][0].metadata[META]["fade_out_sec"])
    filters = [
        f"atrim=start={start_sec:.6f}:duration={duration_sec:.6f}",
        "asetpts=PTS-STARTPTS",
        f"aresample={AUDIO_RATE}",
    ]
    if start_sec:
        filters.append("afade=t=in:d=0.01")
    filters.append(
        f"afade=t=out:st={duration_sec - fade_out_sec:.6f}:d={fade_out_sec:.6f}"
    )
    filters.append(f"apad=whole_dur={duration_sec:.6f}")
    return f"[{song_input}:a]" + ",".join(filters) + "[audio]"


def _frames_row(label: str, ours_mp4: Path, ffmpeg_mp4: Path) -> Result:
    """Both outputs must hold the same number of frames and last as long."""
    ours, reference = _stream_facts(ours_mp4), _stream_facts(ffmpeg_mp4)
    note = (
        f"video {ours[1]:.3f} s / {reference[1]:.3f} s, "
        f"audio {ours[2]:.3f} s / {reference[2]:.3f} s (ours / ffmpeg)"
    )
    same = ours[0] == reference[0] and abs(ours[1] - reference[1]) < 1e-3
    return Result(
        NAME,
        f"{label}: video frames",
        float(ours[0]),
        float(reference[0]),
        "",
        "same frames and duration",
        same,
        reference_name="ffmpeg",
        note=note,
    )


def _stream_facts(path: Path) -> tuple[int, float, float]:
    """Video packets, video duration and audio duration, from the packets."""
    ends = {"video": 0.0, "audio": 0.0}
    frames = 0
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is None or packet.stream.type not in ends:
                continue
            end = float((packet.pts + packet.duration) * packet.time_base)
            ends[packet.stream.type] = max(ends[packet.stream.type], end)
            frames += packet.stream.type == "video"
    return frames, ends["video"], ends["audio"]


def _shell_line(command: list[str]) -> str:
    return shlex.join(command)


def main(argv: list[str] | None = None) -> int:
    return run_alone(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
