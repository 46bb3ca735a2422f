"""Build the OTIO timeline from a plan, and read its rate back.

What the renderer and the exports need sits in each object's metadata under META.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import opentimelineio as otio

from engine import __version__
from engine.music import MusicAnalysis
from engine.probe import MediaInfo
from engine.styles import Style
from engine.timewarp import time_warp

if TYPE_CHECKING:
    from engine.plan import Cut, PlanOptions, Segment, Source

META = "montage_ai"
FADE_OUT_SEC = 2.0
# A still is pushed in from its whole picture to this scale over its shot.
STILL_PUSH_IN = (1.0, 1.08)


def timeline_rate(timeline: otio.schema.Timeline) -> Fraction:
    """The output frame rate, exact (30000/1001 for 29.97)."""
    return metadata_rate(timeline.metadata[META])


def metadata_rate(meta: Any) -> Fraction:
    """The output frame rate from the timeline's metadata (older ones hold fps only)."""
    if "rate" in meta:
        return Fraction(int(meta["rate"][0]), int(meta["rate"][1]))
    return Fraction(int(meta["fps"]))


def build_timeline(
    segments: list[Segment],
    cuts: list[Cut],
    sources: list[Source],
    music: MusicAnalysis,
    style: Style,
    options: PlanOptions,
    start_sec: float,
    total_frames: int,
) -> otio.schema.Timeline:
    """The edit as an OpenTimelineIO timeline, with everything the renderer needs."""
    fps = options.fps
    timeline = otio.schema.Timeline(name="Montage AI")
    timeline.global_start_time = otio.opentime.RationalTime(0, fps)
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for position, segment in enumerate(segments):
        if position > 0 and cuts[position - 1].kind != "cut":
            video.append(_transition(cuts[position - 1], fps))
        video.append(_clip(segment, sources[segment.source_index], fps, position))
    timeline.tracks.append(video)
    timeline.tracks.append(_music_track(music, start_sec, total_frames, fps))
    _add_beat_markers(timeline, music, start_sec, total_frames, fps)
    timeline.metadata[META] = _timeline_metadata(
        music, style, options, start_sec, total_frames
    )
    return timeline


def _clip(
    segment: Segment, source: Source, fps: Fraction, position: int
) -> otio.schema.Clip:
    info = source.info
    rate = float(info.fps_fraction)
    first_frame = _timecode_frames(info)
    reference = otio.schema.ExternalReference(
        target_url=info.path,
        available_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(first_frame, rate),
            otio.opentime.RationalTime(round(info.duration_sec * rate), rate),
        ),
    )
    reference.metadata[META] = {
        "timecode": info.timecode,
        "has_audio": bool(info.audio_streams),
        "start_sec": info.start_sec,
        "fps": list(info.fps),
        "width": info.width,
        "height": info.height,
        "sample_aspect": list(info.sample_aspect),
        "rotation": info.rotation,
        "duration_sec": info.duration_sec,
        "still": info.still,
    }
    in_frame = round(segment.in_sec * info.fps_fraction)
    clip = otio.schema.Clip(
        name=f"{os.path.basename(info.path)} #{position + 1}",
        media_reference=reference,
        source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(first_frame + in_frame, rate),
            otio.opentime.RationalTime(segment.length_frames, fps),
        ),
    )
    clip.metadata[META] = {
        "in_sec": segment.in_sec,
        "section": segment.section,
        "beat_index": segment.beat_index,
        "shot_index": segment.shot_index,
    }
    if info.still:
        # The scale at the first and the last frame shown, transition handles too.
        clip.metadata[META]["push_in"] = list(STILL_PUSH_IN)
    elif segment.speed != 1.0:
        clip.effects.append(time_warp(segment.speed))
        if segment.filled_slower:
            clip.metadata[META]["filled_slower"] = True
    return clip


def _timecode_frames(info: MediaInfo) -> int:
    """The frame number of the source's first frame: its start timecode, or 0.

    Editors number a clip's frames from its timecode, so source ranges counted from
    it relink at the same frames.
    """
    if not info.timecode:
        return 0
    try:
        start = otio.opentime.from_timecode(info.timecode, float(info.fps_fraction))
    except ValueError:
        return 0
    return round(start.value)


def _transition(cut: Cut, fps: Fraction) -> otio.schema.Transition:
    kind = (
        otio.schema.TransitionTypes.SMPTE_Dissolve
        if cut.kind == "crossfade"
        else otio.schema.TransitionTypes.Custom
    )
    transition = otio.schema.Transition(
        name=cut.kind,
        transition_type=kind,
        in_offset=otio.opentime.RationalTime(cut.frames_before, fps),
        out_offset=otio.opentime.RationalTime(cut.frames_after, fps),
    )
    transition.metadata[META] = {"kind": cut.kind}
    return transition


def _music_track(
    music: MusicAnalysis, start_sec: float, total_frames: int, fps: Fraction
) -> otio.schema.Track:
    track = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    rate = float(music.sample_rate)
    reference = otio.schema.ExternalReference(
        target_url=os.path.abspath(music.path),
        available_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, rate),
            otio.opentime.RationalTime(round(music.duration_sec * rate), rate),
        ),
    )
    song = otio.schema.Clip(
        name=os.path.basename(music.path),
        media_reference=reference,
        source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(round(start_sec * rate), rate),
            otio.opentime.RationalTime(total_frames, fps),
        ),
    )
    full_song = abs(start_sec + total_frames / fps - music.duration_sec) < 1 / fps
    song.metadata[META] = {"fade_out_sec": 0.0 if full_song else FADE_OUT_SEC}
    track.append(song)
    return track


def _add_beat_markers(
    timeline: otio.schema.Timeline,
    music: MusicAnalysis,
    start_sec: float,
    total_frames: int,
    fps: Fraction,
) -> None:
    downbeats = set(music.downbeats_sec)
    for number, beat_sec in enumerate(music.beats_sec):
        frame = round((beat_sec - start_sec) * fps)
        if not 0 <= frame < total_frames:
            continue
        is_downbeat = beat_sec in downbeats
        marker = otio.schema.Marker(
            name=f"{'downbeat' if is_downbeat else 'beat'} {number}",
            marked_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(frame, fps),
                otio.opentime.RationalTime(0, fps),
            ),
            color=otio.schema.MarkerColor.RED
            if is_downbeat
            else otio.schema.MarkerColor.GREEN,
        )
        marker.metadata[META] = {
            "beat": number,
            "downbeat": is_downbeat,
            "sec": beat_sec,
        }
        timeline.tracks.markers.append(marker)


def _timeline_metadata(
    music: MusicAnalysis,
    style: Style,
    options: PlanOptions,
    start_sec: float,
    total_frames: int,
) -> dict[str, Any]:
    return {
        "engine_version": __version__,
        "seed": options.seed,
        "style": style.name,
        "prompt": options.prompt,
        "prompt_changes": list(style.changes),
        "fps": int(options.fps) if options.fps.denominator == 1 else float(options.fps),
        "rate": [options.fps.numerator, options.fps.denominator],
        "width": options.size[0],
        "height": options.size[1],
        "aspect": options.aspect,
        "fit": options.fit,
        "quality": options.quality,
        "grade": style.to_dict()["grade"],
        "total_frames": total_frames,
        "music": {
            "path": os.path.abspath(music.path),
            "start_sec": start_sec,
            "tempo_bpm": music.tempo_bpm,
        },
    }
