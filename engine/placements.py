"""The timeline's video track resolved into placements: which source frame each
output frame shows, and the transitions between them, in output frames.

The renderer and every export read the edit through these, so what they write
is what was rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import opentimelineio as otio

from engine.looks import cleanup_of
from engine.stills import PushIn
from engine.timeline import META, timeline_rate
from engine.timewarp import clip_speed


@dataclass
class ClipPlacement:
    """One timeline clip, resolved into output frames and source seconds."""

    path: str
    record_start: int
    record_end: int
    source_in_sec: float
    rate: Fraction
    start_sec: float
    rotation: int
    sample_aspect: tuple[int, int]
    reach_before: int = 0
    reach_after: int = 0
    # A still's scale at its first and last frame shown; None for a video.
    push_in: tuple[float, float] | None = None
    # engine.reframe's window path and engine.upscale's plan, from the metadata.
    follow: dict[str, Any] | None = None
    upscale: dict[str, Any] | None = None
    # Source seconds per output second (0.5: slow motion), and clean-up filters.
    speed: float = 1.0
    cleanup: tuple[str, ...] = ()

    def source_sec(self, frame: int, fps: Fraction) -> float:
        """The stream time shown at output frame `frame` (may lie in a handle)."""
        offset_sec = (frame - self.record_start) / fps * self.speed
        return self.start_sec + self.source_in_sec + offset_sec

    def still_push_in(self, fps: Fraction) -> PushIn | None:
        """A still's zoom over every frame it is shown, transition handles too."""
        if self.push_in is None:
            return None
        first = self.record_start - self.reach_before
        last = self.record_end + self.reach_after - 1
        return PushIn(
            self.source_sec(first, fps), self.source_sec(last, fps), *self.push_in
        )


@dataclass
class Join:
    """A transition between placements[index] and placements[index + 1]."""

    index: int
    frame: int
    kind: str
    before: int
    after: int


def read_placements(
    timeline: otio.schema.Timeline,
) -> tuple[list[ClipPlacement], list[Join]]:
    """Resolve the video track into placements and joins, in output frames."""
    fps = timeline_rate(timeline)
    track = timeline.video_tracks()[0]
    placements: list[ClipPlacement] = []
    joins: list[Join] = []
    pending: otio.schema.Transition | None = None
    record = 0
    for item in track:
        if isinstance(item, otio.schema.Transition):
            pending = item
            continue
        if not isinstance(item, otio.schema.Clip):
            record += round(item.duration().rescaled_to(fps).value)
            continue
        placement = _placement(item, record, fps)
        if pending is not None and placements:
            join = _join(pending, len(placements) - 1, record, fps)
            joins.append(join)
            placements[-1].reach_after = join.after
            placement.reach_before = join.before
            pending = None
        placements.append(placement)
        record = placement.record_end
    return placements, joins


def _placement(clip: otio.schema.Clip, record: int, fps: Fraction) -> ClipPlacement:
    reference = clip.media_reference
    facts = reference.metadata[META]
    rate = Fraction(*facts["fps"])
    source_range = clip.source_range
    offset = source_range.start_time - reference.available_range.start_time
    in_frames = offset.rescaled_to(float(rate)).value
    length = round(source_range.duration.rescaled_to(fps).value)
    clip_meta = clip.metadata.get(META, {})
    push_in = clip_meta.get("push_in")
    return ClipPlacement(
        path=reference.target_url,
        record_start=record,
        record_end=record + length,
        source_in_sec=float(Fraction(round(in_frames)) / rate),
        rate=rate,
        start_sec=float(facts["start_sec"]),
        rotation=int(facts["rotation"]),
        sample_aspect=(int(facts["sample_aspect"][0]), int(facts["sample_aspect"][1])),
        push_in=(float(push_in[0]), float(push_in[1])) if push_in else None,
        follow=clip_meta.get("follow"),
        upscale=clip_meta.get("upscale"),
        speed=clip_speed(clip),
        cleanup=cleanup_of(clip),
    )


def _join(
    transition: otio.schema.Transition, index: int, frame: int, fps: Fraction
) -> Join:
    kind = transition.metadata.get(META, {}).get("kind", "crossfade")
    before = round(transition.in_offset.rescaled_to(fps).value)
    after = round(transition.out_offset.rescaled_to(fps).value)
    return Join(index, frame, kind, before, after)
