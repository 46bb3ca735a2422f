"""Reading the rendered edit back from an exported timeline and comparing it, record
frame by record frame, with the timeline the render used (tests/test_export*.py)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import opentimelineio as otio

from engine.protocol import EventKind
from engine.timeline import timeline_rate
from tests.audio_media import write_song
from tests.engine_runs import run_engine
from tests.media import write_marker_clip

FORMATS = ["fcp7", "fcpxml", "edl", "csv"]
TIMECODE = "01:00:10:05"


def render_job(media_dir: Path, out_dir: Path, fps: float) -> dict[str, Any]:
    folder = media_dir / "export clips é"
    folder.mkdir(exist_ok=True)
    specs: dict[str, dict[str, Any]] = {
        "a 25 fps.mp4": {"frames": 150, "fps": 25, "cuts": [60, 110]},
        "b mum's timecode.mov": {"frames": 180, "fps": 30, "timecode": TIMECODE},
        "c ntsc.mov": {"frames": 150, "fps": Fraction(30000, 1001), "cuts": [80]},
        "d vfr.mp4": {"frames": 150, "fps": 30, "vfr": True, "cuts": [70]},
        "e late ü.mov": {"frames": 125, "fps": 25, "start_sec": 1.5},
        # A phone's measured rate, which editors take for 30.
        "f phone.mp4": {"frames": 150, "fps": Fraction(1501, 50), "cuts": [75]},
    }
    for name, spec in specs.items():
        if not (folder / name).exists():
            write_marker_clip(folder / name, **spec)
    song = media_dir / "export song.wav"
    if not song.exists():
        write_song(song, bpm=120, sections=(("quiet", 6.0), ("build", 6.0)))
    output = out_dir / "my montage.mp4"
    job = {
        "clips": [str(folder)],
        "music": str(song),
        "output": str(output),
        "style": "documentary",
        "duration_sec": 10,
        "quality": "preview",
        "size": [320, 180],
        "fps": fps,
        "seed": 7,
        "export": FORMATS,
    }
    status, events, stderr = run_engine(job, out_dir)
    assert status == 0, stderr[-2000:]
    finished = [e for e in events if e.kind is EventKind.FINISHED][-1]
    timeline = otio.adapters.read_from_file(finished.data["outputs"]["otio"])
    remember_sources(timeline)
    return {
        "outputs": finished.data["outputs"],
        "events": events,
        "timeline": timeline,
        "folder": out_dir,
    }


# The cut list, as each output frame shows it.


def source_rates(timeline: otio.schema.Timeline) -> dict[str, Fraction]:
    return {
        clip.media_reference.target_url: Fraction(
            *clip.media_reference.metadata["montage_ai"]["fps"]
        )
        for clip in timeline.video_tracks()[0].find_clips()
    }


def transition_frames(timeline: otio.schema.Timeline) -> set[int]:
    """Output frames inside a transition, where two sources are mixed."""
    fps = float(timeline_rate(timeline))
    track = timeline.video_tracks()[0]
    frames: set[int] = set()
    for index, item in enumerate(track):
        if isinstance(item, otio.schema.Transition):
            cut = round(track.range_of_child_at_index(index + 1).start_time.value)
            before = round(item.in_offset.rescaled_to(fps).value)
            after = round(item.out_offset.rescaled_to(fps).value)
            frames.update(range(cut - before - 1, cut + after + 1))
    return frames


def shown_frames(
    timeline: otio.schema.Timeline,
    rates: dict[str, Fraction],
    fps: float,
    path_of: Any = None,
) -> dict[int, tuple[str, int]]:
    """Output frame -> (source path, source frame number counted from timecode 0)."""
    track = timeline.video_tracks()[0]
    shown: dict[int, tuple[str, int]] = {}
    for clip in track.find_clips():
        path = path_of(clip) if path_of else local_path(clip.media_reference.target_url)
        rate = rates[path]
        record = track.range_of_child(clip)
        record_in = round(record.start_time.to_seconds() * fps)
        record_out = record_in + round(record.duration.to_seconds() * fps)
        source_in_sec = clip.source_range.start_time.to_seconds()
        if path_of:
            source_in_sec = edl_source_sec(clip.source_range.start_time, path, fps)
        for frame in range(record_in, record_out):
            source_sec = source_in_sec + (frame - record_in) / fps
            shown[frame] = (path, round(source_sec * rate + 1e-6))
    return shown


TIMECODES: dict[str, str] = {}


def edl_source_sec(time: otio.opentime.RationalTime, path: str, fps: float) -> float:
    """An EDL source timecode as seconds from the source's timecode zero.

    The EDL counts a source from its own start timecode label at the EDL's rate.
    """
    label = TIMECODES.get(path)
    if not label:
        return time.to_seconds()
    drop = ";" if abs(fps - 30000 / 1001) < 1e-6 else ":"
    edl_first = otio.opentime.from_timecode(label[:-3] + drop + label[-2:], fps)
    own_first = otio.opentime.from_timecode(label, float(source_rates_by_path[path]))
    return own_first.to_seconds() + (time.value - edl_first.value) / fps


source_rates_by_path: dict[str, Fraction] = {}


def remember_sources(timeline: otio.schema.Timeline) -> None:
    for clip in timeline.video_tracks()[0].find_clips():
        reference = clip.media_reference
        TIMECODES[reference.target_url] = reference.metadata["montage_ai"]["timecode"]
        source_rates_by_path[reference.target_url] = Fraction(
            *reference.metadata["montage_ai"]["fps"]
        )


def local_path(url: str) -> str:
    if url.startswith("file:"):
        return unquote(urlparse(url).path)
    return url


def assert_same_edit(
    read_back: otio.schema.Timeline,
    truth: otio.schema.Timeline,
    path_of: Any = None,
    timeline_grid: bool = False,
) -> None:
    """The read-back cut list is the rendered one, frame for frame.

    At every output frame outside transitions the same source is on screen, so
    record ins and outs are exact; at each cut the incoming shot's in point is the
    same source frame. Within a shot, a source at another rate than the
    timeline is exact to one frame: which of two source frames an editor shows
    between them is its own sampling choice, not the file's. timeline_grid: the
    format counts source positions in timeline frames (EDL, FCP 7 clip items), so a
    source with more frames per second than the timeline is exact to one frame.
    """
    rates = source_rates(truth)
    fps = float(timeline_rate(truth))
    expected = shown_frames(truth, rates, fps)
    got = shown_frames(read_back, rates, fps, path_of)
    mixed = transition_frames(truth)
    total = truth.metadata["montage_ai"]["total_frames"]
    assert len(expected) == total
    track = truth.video_tracks()[0]
    cuts = {
        round(track.range_of_child(clip).start_time.to_seconds() * fps)
        for clip in track.find_clips()
    }
    compared = 0
    for frame in range(total):
        path, number = expected[frame]
        got_path, got_number = got[frame]
        coarse = timeline_grid and rates[path] > fps
        if frame in cuts and not coarse:
            assert (got_path, got_number) == (path, number), f"in point at {frame}"
        if frame in mixed:
            continue
        assert got_path == path, f"output frame {frame}"
        if abs(rates[path] - fps) < 1e-9:
            assert got_number == number, f"output frame {frame}"
        else:
            assert abs(got_number - number) <= 1, f"output frame {frame}"
        compared += 1
    assert compared > total * 0.6
