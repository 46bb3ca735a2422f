"""The edit as a cut list for a spreadsheet: one row per shot."""

from __future__ import annotations

import csv
import io
from fractions import Fraction

import opentimelineio as otio

from engine.export.common import source_rate, timeline_fps
from engine.timeline import META
from engine.timewarp import clip_speed

COLUMNS = [
    "index",
    "source_path",
    "source_in_tc",
    "source_out_tc",
    "source_in_sec",
    "source_out_sec",
    "source_fps",
    "record_in_tc",
    "record_out_tc",
    "record_in_frame",
    "record_out_frame",
    "beat",
    "transition_in",
    "speed",
]


def write_cut_list(
    timeline: otio.schema.Timeline, stem: str
) -> tuple[dict[str, str], list[str]]:
    """Source in and out (timecode and seconds), record in and out, beat number,
    the transition into the shot and its speed (0.5: slow motion).

    Source timecodes count from the source's own start timecode at its own rate;
    seconds count from its first frame. Out points are exclusive, as editors
    count them.
    """
    fps = timeline_fps(timeline)
    track = timeline.video_tracks()[0]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    joined = "cut"
    number = 0
    for clip in track:
        if isinstance(clip, otio.schema.Transition):
            joined = clip.metadata.get(META, {}).get("kind", clip.name)
            continue
        if not isinstance(clip, otio.schema.Clip):
            continue
        number += 1
        rate = source_rate(clip)
        # A source counts as its own timecode does; without one, non-drop-frame.
        label = clip.media_reference.metadata[META].get("timecode") or ""
        drop_frame = ";" in label
        first = clip.media_reference.available_range.start_time
        source_in = clip.source_range.start_time
        # A slowed clip plays through less source than it lasts (engine.timewarp).
        speed = clip_speed(clip)
        length_sec = clip.source_range.duration.to_seconds() * speed
        in_frames = round(source_in.value)
        out_frames = in_frames + round(
            Fraction(length_sec).limit_denominator(10**6) * rate
        )
        in_sec = (in_frames - round(first.value)) / rate
        record = track.range_of_child(clip)
        record_in = round(record.start_time.rescaled_to(fps).value)
        record_out = record_in + round(record.duration.rescaled_to(fps).value)
        writer.writerow(
            [
                number,
                clip.media_reference.target_url,
                _timecode(in_frames, rate, drop_frame),
                _timecode(out_frames, rate, drop_frame),
                f"{float(in_sec):.6f}",
                f"{float(in_sec) + length_sec:.6f}",
                f"{float(rate):.6g}",
                _timecode(record_in, Fraction(fps)),
                _timecode(record_out, Fraction(fps)),
                record_in,
                record_out,
                clip.metadata.get(META, {}).get("beat_index", ""),
                joined,
                f"{speed:g}",
            ]
        )
        joined = "cut"
    return {".csv": out.getvalue()}, []


def _timecode(frames: int, rate: Fraction, drop_frame: bool | None = None) -> str:
    """SMPTE timecode at rate, or "" if none; drop_frame None: as the rate implies
    (drop-frame at 29.97 and 59.94)."""
    time = otio.opentime.RationalTime(frames, float(rate))
    try:
        if drop_frame is None:
            return otio.opentime.to_timecode(time, float(rate))
        return otio.opentime.to_timecode(time, float(rate), drop_frame)
    except ValueError:
        return ""
