"""What every export format needs from the timeline: clips, song, limits in words."""

from __future__ import annotations

import os
from collections import Counter
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

from engine.follow import enhancement_warnings
from engine.frames import grade_filters
from engine.looks import cleaned_clip_names
from engine.luts import lut_path
from engine.timeline import META, timeline_rate
from engine.timewarp import speed_warning

TRANSITION_NAMES = {
    "crossfade": "crossfade",
    "dip_black": "dip to black",
    "dip_white": "dip to white",
    "flash": "flash",
    "whip": "whip pan",
}
# Rates editors know by name; a clip's measured rate within 0.5 % is taken as one.
STANDARD_RATES = [
    Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001),
    Fraction(30), Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60),
    Fraction(100), Fraction(120000, 1001), Fraction(120),
]  # fmt: skip


def standard_rate(rate: Fraction) -> Fraction:
    """The named rate a measured one stands for (30.02 -> 30), else the rate."""
    nearest = min(STANDARD_RATES, key=lambda known: abs(known - rate))
    return nearest if abs(nearest - rate) <= rate * Fraction(5, 1000) else rate


def missing_sources(timeline: otio.schema.Timeline) -> list[str]:
    """Media the timeline names that is not at its path any more."""
    paths = [clip.media_reference.target_url for clip in timeline.find_clips()]
    return [path for path in dict.fromkeys(paths) if not os.path.exists(path)]


def video_clips(timeline: otio.schema.Timeline) -> list[otio.schema.Clip]:
    return list(timeline.video_tracks()[0].find_clips())


def song_clip(timeline: otio.schema.Timeline) -> otio.schema.Clip | None:
    for track in timeline.audio_tracks():
        for clip in track.find_clips():
            return clip
    return None


def timeline_fps(timeline: otio.schema.Timeline) -> Fraction:
    return timeline_rate(timeline)


def source_rate(clip: otio.schema.Clip) -> Fraction:
    return Fraction(*clip.media_reference.metadata[META]["fps"])


def file_url(path: str) -> str:
    """An absolute file URL (file:///...), percent-encoded, as editors expect."""
    return Path(os.path.abspath(path)).as_uri()


def song_to_frames(timeline: otio.schema.Timeline, format_name: str) -> str | None:
    """Re-time the song's ranges from samples to timeline frames, in place.

    Formats that count audio in video frames cannot hold a start between frames;
    returns a warning when the song's start moved by more than a millisecond.
    """
    song = song_clip(timeline)
    if song is None:
        return None
    fps = timeline_fps(timeline)
    reference = song.media_reference
    start = song.source_range.start_time
    start_frames = round(start.rescaled_to(fps).value)
    moved_ms = abs(start_frames / fps - start.to_seconds()) * 1000
    available = reference.available_range
    reference.available_range = otio.opentime.TimeRange(
        otio.opentime.RationalTime(0, fps),
        otio.opentime.RationalTime(
            round(available.duration.rescaled_to(fps).value), fps
        ),
    )
    song.source_range = otio.opentime.TimeRange(
        otio.opentime.RationalTime(start_frames, fps),
        song.source_range.duration.rescaled_to(fps),
    )
    if moved_ms <= 1.0:
        return None
    return (
        f"{format_name} counts the song in frames: it starts {moved_ms:.0f} ms off a "
        f"frame boundary, so it starts at the nearest frame, "
        f"{float(start_frames / fps):.3f} s into the song."
    )


def common_warnings(
    timeline: otio.schema.Timeline,
    format_name: str,
    *,
    transitions: bool,
    markers: bool,
    fades: bool,
    speed: bool = False,
) -> list[str]:
    """What the render did that format_name cannot hold, one sentence each."""
    meta = timeline.metadata[META]
    warnings = []
    grade = meta.get("grade") or {}
    if grade_filters(grade):
        warnings.append(
            f"{format_name} has no place for the colour grade of the style "
            f"{meta.get('style')!r}; the footage appears ungraded in your editor."
            + lut_advice(grade)
        )
    warnings += cleanup_warnings(timeline, format_name)
    if not speed and (slowed := speed_warning(timeline, format_name)):
        warnings.append(slowed)
    framing = _framing_warning(timeline, format_name)
    if framing:
        warnings.append(framing)
    push_in = push_in_warning(timeline, format_name)
    if push_in:
        warnings.append(push_in)
    warnings += enhancement_warnings(timeline, format_name)
    kinds = Counter(
        item.metadata.get(META, {}).get("kind", item.name)
        for item in timeline.video_tracks()[0]
        if isinstance(item, otio.schema.Transition)
    )
    if kinds and not transitions:
        listed = ", ".join(
            f"{count} {TRANSITION_NAMES.get(kind, kind)}"
            for kind, count in kinds.items()
        )
        warnings.append(
            f"{format_name} carries no transitions here ({listed}); each is a cut "
            "at the transition's centre."
        )
    elif transitions and set(kinds) - {"crossfade"}:
        others = ", ".join(
            TRANSITION_NAMES.get(kind, kind)
            for kind in sorted(set(kinds) - {"crossfade"})
        )
        warnings.append(
            f"{format_name} has only cross dissolves: the {others} transitions "
            "are written as cross dissolves of the same length."
        )
    if not markers and len(timeline.tracks.markers):
        warnings.append(
            f"{format_name} holds no markers: the {len(timeline.tracks.markers)} beat "
            "markers are in the .otio (and in FCP 7 XML and FCPXML, where those are "
            "exported)."
        )
    song = song_clip(timeline)
    fade = float(song.metadata.get(META, {}).get("fade_out_sec", 0.0)) if song else 0.0
    if fade and not fades:
        warnings.append(
            f"{format_name} has no audio fades: add the song's {fade:g} s fade-out "
            "at the end yourself."
        )
    return warnings


def lut_advice(grade: dict[str, object]) -> str:
    """Where the grade's LUT is, for applying it in an editor; "" if it has none."""
    if not grade.get("lut"):
        return ""
    return f" Its LUT is {lut_path(str(grade['lut']))}: apply it there to match."


def cleanup_warnings(timeline: otio.schema.Timeline, format_name: str) -> list[str]:
    """The clips the render stabilized or denoised, which the format cannot say."""
    done = {
        "stabilize": ("stabilized", "stabilizer"),
        "denoise": ("denoised", "noise reduction"),
    }
    warnings = []
    for kind, names in cleaned_clip_names(timeline).items():
        if names:
            listed = ", ".join(names[:5]) + (" and others" if len(names) > 5 else "")
            did, tool = done[kind]
            warnings.append(
                f"{format_name} cannot say that the render {did} {listed}; use your "
                f"editor's {tool} on them."
            )
    return warnings


def push_in_warning(timeline: otio.schema.Timeline, format_name: str) -> str | None:
    stills = sorted(
        {
            os.path.basename(clip.media_reference.target_url)
            for clip in video_clips(timeline)
            if clip.metadata.get(META, {}).get("push_in")
        }
    )
    if not stills:
        return None
    names = ", ".join(stills[:5]) + (" and others" if len(stills) > 5 else "")
    return (
        f"{format_name} cannot say the slow push-in on the still pictures ({names}): "
        "they hold a steady size in your editor. Add a zoom there (scale keyframes) "
        "if you want it."
    )


def _framing_warning(timeline: otio.schema.Timeline, format_name: str) -> str | None:
    meta = timeline.metadata[META]
    width, height = int(meta["width"]), int(meta["height"])
    reframed = []
    for clip in video_clips(timeline):
        facts = clip.media_reference.metadata[META]
        shown_width = (
            facts["width"] * facts["sample_aspect"][0] / facts["sample_aspect"][1]
        )
        shown = (
            (facts["height"], shown_width)
            if facts["rotation"] % 180
            else (shown_width, facts["height"])
        )
        if abs(shown[0] * height - shown[1] * width) > 0.01 * width * height:
            reframed.append(os.path.basename(clip.media_reference.target_url))
    if not reframed:
        return None
    names = ", ".join(sorted(set(reframed))[:5])
    how = "crops to fill" if meta["fit"] == "crop" else "fits with bars"
    setting = "fill (crop)" if meta["fit"] == "crop" else "fit"
    return (
        f"{format_name} does not carry the render's framing: the render {how} the "
        f"{width}x{height} frame for {names}{' and others' if len(set(reframed)) > 5 else ''}. "
        f"Set your editor's scaling of mismatched media to {setting}."
    )
