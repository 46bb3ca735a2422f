"""What a job says when it cannot be done exactly as asked: clips too short for
any shot, a song shorter than the length, a video chosen as the song, a size that
does not fit the aspect."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import opentimelineio as otio

from engine.music import MusicAnalysis
from engine.plan import Source, music_window
from engine.probe import has_moving_picture
from engine.protocol import Event, JobSpec, frame_rate, make_warning
from engine.timeline import META

log = logging.getLogger(__name__)

Emit = Callable[[Event], None]


def warn_about_short_clips(
    sources: list[Source], timeline: otio.schema.Timeline, emit: Emit
) -> None:
    """Name the clips left out of the edit for being shorter than any shot, and
    say when a shot had to play its clip slower to fill the time to its beat."""
    clips = list(timeline.video_tracks()[0].find_clips())
    used = {clip.media_reference.target_url for clip in clips}
    shortest_sec = min(clip.duration().to_seconds() for clip in clips)
    for source in sources:
        info = source.info
        if info.path in used or info.still or info.duration_sec >= shortest_sec:
            continue
        emit(make_warning("clip_too_short", (
            f"{Path(info.path).name} lasts {info.duration_sec:.2f} s, less than the "
            f"shortest shot of this edit ({shortest_sec:.2f} s), so it is not in "
            "the montage. Use a faster style or a song with a quicker beat to fit "
            "clips this short."
        ), info.path))  # fmt: skip
    slowed = sorted({
        Path(clip.media_reference.target_url).name
        for clip in clips
        if clip.metadata.get(META, {}).get("filled_slower")
    })  # fmt: skip
    if slowed:
        emit(make_warning("clip_too_short", (
            f"{', '.join(slowed)}: no clip is as long as the time between some "
            "beats, so those shots play their clip slower to fill it (frames "
            "repeat). Add longer clips, or choose a faster style."
        )))  # fmt: skip


def warn_about_changed_options(spec: JobSpec, music: MusicAnalysis, emit: Emit) -> None:
    """Say so when the job cannot be done exactly as asked."""
    _warn_if_song_is_shorter(spec, music, emit)
    if has_moving_picture(music.path):
        name = Path(music.path).name
        emit(make_warning("song_from_video", (
            f"{name} is a video: its sound is the montage's music and its picture "
            "is not used. To use its picture, add it to the clips; for other music, "
            "choose an audio file as the song."
        ), music.path))  # fmt: skip
    if spec.size is None:
        return
    width, height = spec.size
    shape = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}[spec.aspect]
    if abs(width / height - shape) > 0.01 * shape:
        emit(
            make_warning(
                "size",
                f"The size {width}x{height} is not {spec.aspect}: the size was used "
                "and the aspect ignored.",
            )
        )
    if width % 2 or height % 2:
        emit(
            make_warning(
                "size",
                f"H.264 needs even sizes: {width}x{height} became "
                f"{width // 2 * 2}x{height // 2 * 2}.",
            )
        )


def _warn_if_song_is_shorter(spec: JobSpec, music: MusicAnalysis, emit: Emit) -> None:
    """Say how long the montage is when the song ends before the length asked."""
    if spec.duration_sec is None:
        return
    fps = frame_rate(spec.fps)
    start_sec, total_frames = music_window(music, fps, spec.duration_sec)
    if total_frames >= round(spec.duration_sec * fps):
        return
    name = Path(music.path).name
    skipped = f" after {start_sec:.1f} s of silence" if start_sec > 0 else ""
    # The music in whole frames, which is what the montage holds: one figure.
    lasts_sec = float(total_frames / fps)
    message = (
        f"{name} has {lasts_sec:.1f} s of music{skipped}, less than the "
        f"{spec.duration_sec:g} s asked: the montage ends with the song and lasts "
        f"{lasts_sec:.1f} s (the song is not looped). Choose a longer song for a "
        "longer montage."
    )
    log.warning(message)
    emit(make_warning("duration", message, music.path))


def warn_about_false_keyframes(
    paths: set[str], timeline: otio.schema.Timeline, emit: Emit
) -> None:
    """Name the clips whose files mark pictures as keyframes that decoding cannot
    start from: the render worked around them, but whatever seeks there may not."""
    used = {clip.media_reference.target_url for clip in timeline.find_clips()}
    names = sorted(Path(path).name for path in paths & used)
    if names:
        emit(make_warning("false_keyframes", (
            f"{', '.join(names)}: the file marks pictures as keyframes that decoding "
            "cannot start from. The render started each shot at a whole picture, "
            "but an editor, a player or the MLT project that seeks there may show "
            "grey or green frames at the start of a shot; if yours does, convert "
            "the clip (any converter that re-encodes the video) and render again."
        )))  # fmt: skip
