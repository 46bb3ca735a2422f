"""Slow motion in the timeline: a shot's speed as an OTIO LinearTimeWarp effect.

OTIO's convention, which its EDL adapter reads too: a clip's source_range lasts as
long as the clip does on the track; the source it plays through is that duration
times the warp's time_scalar (0.5: half as much source, at half speed).
"""

from __future__ import annotations

import math
import os

import opentimelineio as otio

SLOW_MOTION = "slow motion"


def time_warp(speed: float) -> otio.schema.LinearTimeWarp:
    """The effect that plays a clip at `speed` times its own rate."""
    return otio.schema.LinearTimeWarp(name=SLOW_MOTION, time_scalar=speed)


def clip_speed(clip: otio.schema.Clip) -> float:
    """Source seconds a clip plays per timeline second: its time warps, multiplied."""
    return math.prod(
        float(effect.time_scalar)
        for effect in clip.effects
        if isinstance(effect, otio.schema.LinearTimeWarp)
    )


def remove_time_warps(timeline: otio.schema.Timeline) -> None:
    """Drop every time warp, in place: for an adapter that would write them wrongly
    (the EDL's writes a slowed clip's source out as if it played faster)."""
    for clip in timeline.find_clips():
        kept = [
            e for e in clip.effects if not isinstance(e, otio.schema.LinearTimeWarp)
        ]
        clip.effects[:] = kept


def speed_warning(timeline: otio.schema.Timeline, format_name: str) -> str | None:
    """What a format without speed changes shows of the slow-motion shots."""
    slowed = [
        clip
        for clip in timeline.video_tracks()[0].find_clips()
        if clip_speed(clip) != 1.0
    ]
    if not slowed:
        return None
    names = sorted({os.path.basename(c.media_reference.target_url) for c in slowed})
    listed = ", ".join(names[:5]) + (" and others" if len(names) > 5 else "")
    speeds = sorted({f"{clip_speed(c):.0%}" for c in slowed})
    return (
        f"{format_name} cannot say the slow motion of {len(slowed)} shot(s) "
        f"({listed}): they start on the right frame but play at normal speed. Set "
        f"their speed to {' or '.join(speeds)} in your editor."
    )
