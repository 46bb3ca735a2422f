"""What else people drop among their clips: stills, GIFs, audio, broken files, files
that go away, and paths and output folders that fight back (issue #5)."""

from __future__ import annotations

import ctypes
import math
import os
import resource
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import opentimelineio as otio
import pytest

from engine.errors import RenderError
from engine.frames import FrameTransform
from engine.job import run_job
from engine.probe import STILL_DURATION_SEC, probe_media
from engine.protocol import (
    EXIT_CODES,
    ErrorCode,
    Event,
    EventKind,
    JobSpec,
)
from engine.render import render_timeline
from engine.stills import PushIn, StillReader
from tests.audio_media import write_click_track
from tests.engine_runs import run_engine
from tests.input_media import (
    write_faststart_copy,
    write_marker_gif,
    write_still,
    write_truncated_copy,
)
from tests.media import (
    ClipTruth,
    decode_rgb_frames,
    is_upright,
    read_marker,
    write_marker_clip,
)

FPS = 30
SIZE = (320, 180)
FRAME_CENTRE = ((SIZE[0] - 1) / 2, (SIZE[1] - 1) / 2)
# Marker indices of the stills, far above any video frame's.
JPEG_INDEX = 4000
PNG_INDEX = 4001
# From prctl.h and capability.h: drop a capability from the bounding set.
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2


def song(folder: Path, name: str = "song.wav") -> Path:
    """A 6 s click track; the same bytes every time, so it is analysed once."""
    path = folder / name
    write_click_track(path, bpm=120, duration_sec=6.0)
    return path


def warnings_by_name(events: list[Event]) -> dict[str, str]:
    return {
        Path(event.data["path"]).name: event.data["message"]
        for event in events
        if event.kind is EventKind.WARNING and event.data.get("path")
    }


def record_ranges(
    timeline: otio.schema.Timeline,
) -> list[tuple[otio.schema.Clip, int, int]]:
    """Each video clip with its first and end output frame."""
    track = timeline.video_tracks()[0]
    ranges = []
    for clip in track.find_clips():
        shown = track.range_of_child(clip)
        start = round(shown.start_time.rescaled_to(FPS).value)
        length = round(shown.duration.rescaled_to(FPS).value)
        ranges.append((clip, start, start + length))
    return ranges


def handles(timeline: otio.schema.Timeline, clip: otio.schema.Clip) -> tuple[int, int]:
    """Frames of the clip shown inside the transitions before and after it."""
    before, after = timeline.video_tracks()[0].neighbors_of(clip)
    return (
        _frames(before.in_offset) if isinstance(before, otio.schema.Transition) else 0,
        _frames(after.out_offset) if isinstance(after, otio.schema.Transition) else 0,
    )


def blended_frames(timeline: otio.schema.Timeline) -> set[int]:
    """Output frames inside a transition, where two pictures mix."""
    track = timeline.video_tracks()[0]
    blended: set[int] = set()
    for item in track:
        if isinstance(item, otio.schema.Transition):
            cut = _frames(track.range_of_child(item).start_time) + _frames(
                item.in_offset
            )
            blended.update(
                range(cut - _frames(item.in_offset), cut + _frames(item.out_offset))
            )
    return blended


def _frames(time: otio.opentime.RationalTime) -> int:
    return round(time.rescaled_to(FPS).value)


@dataclass
class MarkerBox:
    """The outer edges of a marker's white ring, in pixels, to a fraction of one."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def centre(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2


def marker_box(rgb: np.ndarray) -> MarkerBox:
    """Find the ring from outside, along the rows and columns through the centre.

    Only the marker is near white in every channel (the scene and the cue bands are
    coloured); a few rows or columns are averaged against encoding noise, and each
    edge is where the profile crosses the threshold, interpolated between pixels.
    """
    level = rgb.min(axis=2).astype(np.float64)
    height, width = level.shape
    reach = int(0.4 * height)
    centre_y, centre_x = height // 2, width // 2
    row = level[centre_y - 5 : centre_y + 6].mean(axis=0)
    row = row[centre_x - reach : centre_x + reach]
    column = level[:, centre_x - 5 : centre_x + 6].mean(axis=1)
    column = column[centre_y - reach : centre_y + reach]
    return MarkerBox(
        left=centre_x - reach + _first_crossing(row),
        top=centre_y - reach + _first_crossing(column),
        right=centre_x + reach - 1 - _first_crossing(row[::-1]),
        bottom=centre_y + reach - 1 - _first_crossing(column[::-1]),
    )


def _first_crossing(profile: np.ndarray, threshold: float = 160.0) -> float:
    index = int(np.argmax(profile >= threshold))
    assert index > 0, "no marker edge along the profile"
    before, after = profile[index - 1], profile[index]
    return index - 1 + float((threshold - before) / (after - before))


# Stills and GIFs.


@pytest.fixture(scope="module")
def mixed_render(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One render of a folder with a video, a phone JPEG (stored turned, with its
    EXIF orientation), a 4:3 PNG and an animated GIF, crossfades and every export."""
    folder = tmp_path_factory.mktemp("stills and gifs")
    clips = folder / "clips"
    clips.mkdir()
    video = write_marker_clip(clips / "video.mp4", frames=150, fps=FPS, size=SIZE)
    gif = write_marker_gif(clips / "loop.gif", frames=40, fps=10, size=(160, 90))
    write_still(clips / "phone é.jpg", size=(384, 216), index=JPEG_INDEX, rotation=270)
    write_still(clips / "screen.png", size=(240, 180), index=PNG_INDEX)
    out = folder / "montage.mp4"
    job = {
        "clips": [str(clips)],
        "music": str(song(folder)),
        "output": str(out),
        "quality": "preview",
        "size": list(SIZE),
        "fps": FPS,
        "seed": 8,
        "style": "dynamic",
        "prompt": "smooth",  # crossfades, into and out of the stills too
        "export": ["fcp7", "fcpxml", "edl", "mlt", "csv"],
    }
    status, events, stderr = run_engine(job, folder)
    assert status == 0, stderr
    return {
        "events": events,
        "timeline": otio.adapters.read_from_file(str(out.with_suffix(".otio"))),
        "frames": [rgb for _, rgb in decode_rgb_frames(out)],
        "truths": {video.path.name: video, gif.path.name: gif},
    }


def test_stills_are_shots_pushed_in_upright_at_their_aspect(
    mixed_render: dict[str, Any],
) -> None:
    timeline, frames = mixed_render["timeline"], mixed_render["frames"]
    blended = blended_frames(timeline)
    stills = [
        (clip, start, end)
        for clip, start, end in record_ranges(timeline)
        if Path(clip.media_reference.target_url).suffix in (".jpg", ".png")
    ]
    assert {Path(c.media_reference.target_url).name for c, _, _ in stills} == {
        "phone é.jpg",
        "screen.png",
    }
    for clip, start, end in stills:
        reference = clip.media_reference
        assert isinstance(reference, otio.schema.ExternalReference)
        assert reference.available_range.duration.to_seconds() == STILL_DURATION_SEC
        jpeg = reference.target_url.endswith(".jpg")
        shown = [n for n in range(start, end) if n not in blended]
        # The marker reads only when upright and unmirrored; the JPEG is 16:9 and
        # keeps its orientation cues (the 4:3 PNG loses them to the crop).
        assert all(
            read_marker(frames[n]) == (JPEG_INDEX if jpeg else PNG_INDEX) for n in shown
        ), clip.name
        assert not jpeg or all(is_upright(frames[n]) for n in shown), clip.name

        boxes = {n: marker_box(frames[n]) for n in shown}
        for box in boxes.values():
            # Centred, and the square marker stays square: the aspect is right.
            assert box.centre == pytest.approx(FRAME_CENTRE, abs=1.0)
            assert box.width == pytest.approx(box.height, abs=1.0)
        # From 100% at the first frame shown (in a transition too) to 108% at the
        # last, evenly; measured against the first frame outside transitions.
        before, after = handles(timeline, clip)
        first_shown, last_shown = start - before, end - 1 + after
        scale = {
            n: 1 + 0.08 * (n - first_shown) / (last_shown - first_shown) for n in shown
        }
        first = shown[0]
        for n in shown[1:]:
            growth = boxes[n].width / boxes[first].width
            assert growth == pytest.approx(scale[n] / scale[first], abs=0.01), n
        stride = 3
        assert all(
            boxes[b].width > boxes[a].width
            for a, b in zip(shown, shown[stride:], strict=False)
        )


def test_exports_say_they_cannot_hold_the_push_in(mixed_render: dict[str, Any]) -> None:
    limits = [
        event.data
        for event in mixed_render["events"]
        if event.kind is EventKind.WARNING and "push-in" in event.data["message"]
    ]
    assert {Path(limit["path"]).suffix for limit in limits} >= {
        ".xml",
        ".fcpxml",
        ".edl",
    }
    for limit in limits:
        assert "phone é.jpg" in limit["message"]
        assert "screen.png" in limit["message"]


def test_an_animated_gif_is_a_video_clip(mixed_render: dict[str, Any]) -> None:
    timeline, frames = mixed_render["timeline"], mixed_render["frames"]
    truth: ClipTruth = mixed_render["truths"]["loop.gif"]
    blended = blended_frames(timeline)
    gif_clips = [
        (clip, start, end)
        for clip, start, end in record_ranges(timeline)
        if clip.media_reference.target_url.endswith(".gif")
    ]
    assert gif_clips, "the animated GIF was not used"
    for clip, start, end in gif_clips:
        in_sec = clip.metadata["montage_ai"]["in_sec"]
        for n in range(start, end):
            if n in blended:
                continue
            # The GIF frame on screen at that time: the nearest, the earlier on a tie.
            time_sec = in_sec + (n - start) / FPS
            want = min(truth.frames - 1, math.floor(time_sec * truth.fps + 0.5 - 1e-6))
            assert read_marker(frames[n]) == want, (clip.name, n)
            assert is_upright(frames[n])


def test_a_gif_of_one_frame_is_a_still(tmp_path: Path) -> None:
    write_marker_gif(tmp_path / "one.gif", frames=1)
    one = probe_media(tmp_path / "one.gif")
    loop = probe_media(write_marker_gif(tmp_path / "loop.gif", frames=20).path)
    assert one.still and one.duration_sec == STILL_DURATION_SEC
    assert not loop.still and loop.duration_sec == pytest.approx(2.0, abs=0.01)


def test_a_still_zooms_smoothly_about_its_centre(tmp_path: Path) -> None:
    """Frame by frame, without an encoder's noise: no step, no drift."""
    write_still(tmp_path / "still.jpg", size=(480, 360), index=7, rotation=90)
    transform = FrameTransform(*SIZE, "crop", {}, Fraction(FPS))
    push_in = PushIn(start_sec=0.0, end_sec=2.0, start_scale=1.0, end_scale=1.08)
    reader = StillReader(str(tmp_path / "still.jpg"), transform, 90, (1, 1), push_in)
    pictures = [reader.frame_at(n / FPS).to_ndarray(format="rgb24") for n in range(61)]
    reader.close()

    assert all(read_marker(rgb) == 7 for rgb in pictures)
    boxes = [marker_box(rgb) for rgb in pictures]
    widths = np.array([box.width for box in boxes])
    steps = np.diff(widths)
    # Every frame a little larger, never by a whole-pixel jump.
    assert np.all(steps > 0) and steps.max() < 0.3
    assert widths[-1] / widths[0] == pytest.approx(1.08, abs=0.005)
    assert all(box.width == pytest.approx(box.height, abs=0.5) for box in boxes)
    centres = np.array([box.centre for box in boxes])
    assert np.ptp(centres, axis=0).max() < 0.2
    assert centres[0] == pytest.approx(FRAME_CENTRE, abs=1.0)


# Files that are not usable clips.


def test_audio_and_broken_files_are_named_and_the_rest_used(tmp_path: Path) -> None:
    write_marker_clip(tmp_path / "good.mp4", frames=90, fps=FPS, size=SIZE)
    whole = write_marker_clip(tmp_path / "whole.mp4", frames=150, fps=FPS, size=SIZE)
    size = whole.path.stat().st_size
    write_truncated_copy(whole.path, tmp_path / "half.mp4", keep_bytes=size // 2)
    write_truncated_copy(whole.path, tmp_path / "first 1 KB.mp4", keep_bytes=1024)
    write_faststart_copy(whole.path, tmp_path / "web.mp4")
    web_size = (tmp_path / "web.mp4").stat().st_size
    write_truncated_copy(tmp_path / "web.mp4", tmp_path / "web half.mp4",
                         keep_bytes=web_size // 2)  # fmt: skip
    write_click_track(tmp_path / "voice memo.m4a", bpm=90, duration_sec=2.0)
    names = ["good.mp4", "half.mp4", "first 1 KB.mp4", "web half.mp4", "voice memo.m4a"]
    out = tmp_path / "out.mp4"
    job = {
        "clips": [str(tmp_path / name) for name in names],
        "music": str(song(tmp_path)),
        "output": str(out),
        "quality": "preview",
        "size": list(SIZE),
        "fps": FPS,
        "seed": 3,
    }
    status, events, stderr = run_engine(job, tmp_path)
    assert status == 0, stderr
    named = warnings_by_name(events)
    assert set(named) == {
        "half.mp4",
        "first 1 KB.mp4",
        "web half.mp4",
        "voice memo.m4a",
    }
    assert "audio file" in named["voice memo.m4a"]
    assert "as the song" in named["voice memo.m4a"]
    for broken in ("half.mp4", "first 1 KB.mp4"):
        assert "incomplete or damaged" in named[broken]
        assert "Copy it again" in named[broken]
    assert "cut short" in named["web half.mp4"]
    assert "uses that part" in named["web half.mp4"]

    timeline = otio.adapters.read_from_file(str(out.with_suffix(".otio")))
    used = {
        Path(c.media_reference.target_url).name for c, _, _ in record_ranges(timeline)
    }
    assert used == {"good.mp4", "web half.mp4"}
    # The part of the cut-short file that is used decodes: every frame is its own,
    # none a frozen last frame.
    frames = [rgb for _, rgb in decode_rgb_frames(out)]
    for clip, start, end in record_ranges(timeline):
        if Path(clip.media_reference.target_url).name != "web half.mp4":
            continue
        in_sec = clip.metadata["montage_ai"]["in_sec"]
        for offset in range(end - start):
            want = round((in_sec + offset / FPS) * FPS)
            assert read_marker(frames[start + offset]) == want


# Files that go away.


def test_a_clip_deleted_after_analysis_is_left_out_with_a_warning(
    tmp_path: Path,
) -> None:
    kept = write_marker_clip(tmp_path / "kept.mp4", frames=90, fps=FPS, size=SIZE)
    gone = write_marker_clip(tmp_path / "gone.mp4", frames=90, fps=FPS, size=SIZE)
    events: list[Event] = []

    def emit(event: Event) -> None:
        events.append(event)
        if event.kind is EventKind.STAGE and event.data["stage"] == "plan":
            gone.path.unlink()

    spec = JobSpec(clips=[str(kept.path), str(gone.path)], music=str(song(tmp_path)),
                   output=str(tmp_path / "out.mp4"), quality="preview",
                   size=SIZE, seed=1)  # fmt: skip
    finished = run_job(spec, emit)

    message = warnings_by_name(events)["gone.mp4"]
    assert "went away" in message and "Reconnect it" in message
    timeline = otio.adapters.read_from_file(finished["outputs"]["otio"])
    used = {
        Path(c.media_reference.target_url).name for c, _, _ in record_ranges(timeline)
    }
    assert used == {"kept.mp4"}
    assert Path(finished["outputs"]["video"]).stat().st_size > 0


def test_a_source_gone_at_render_time_fails_cleanly(
    mixed_render: dict[str, Any], tmp_path: Path
) -> None:
    timeline = mixed_render["timeline"].deepcopy()
    for clip in timeline.video_tracks()[0].find_clips():
        if clip.media_reference.target_url.endswith("video.mp4"):
            clip.media_reference.target_url = str(tmp_path / "unplugged.mp4")
    out = tmp_path / "montage.mp4"
    with pytest.raises(RenderError) as raised:
        render_timeline(timeline, out)
    assert "unplugged.mp4" in raised.value.message
    assert "no longer there" in raised.value.message
    assert "Reconnect it" in raised.value.message
    assert list(tmp_path.iterdir()) == []


# Paths and output folders.


def test_spaces_accents_and_long_names_work(tmp_path: Path) -> None:
    # Names near the 255-byte limit; "é" and "ü" take two bytes each.
    clip_name = "clip é " + "é" * 100 + ".mp4"
    song_name = "ü song " + "a" * 230 + ".wav"
    out_name = "my montage ö " + "ö" * 105 + ".mp4"
    folder = tmp_path / "a folder with ümlauts"
    folder.mkdir()
    clip = write_marker_clip(folder / clip_name, frames=60, fps=FPS, size=SIZE)
    song(folder, song_name)
    out = tmp_path / "out ñ" / out_name
    assert min(len(clip_name.encode()), len(song_name.encode())) > 200
    job = {"clips": [str(folder)], "music": str(folder / song_name), "output": str(out),
           "quality": "preview", "size": list(SIZE), "seed": 1,
           "export": ["edl", "csv"]}  # fmt: skip
    status, events, stderr = run_engine(job, tmp_path)
    assert status == 0, stderr
    outputs = events[-1].data["outputs"]
    assert outputs["video"] == str(out)
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [
            out_name,
            *(out.stem + suffix for suffix in (".otio", ".edl", ".reels.csv", ".csv")),
        ]
    )
    timeline = otio.adapters.read_from_file(outputs["otio"])
    assert {c.media_reference.target_url for c, _, _ in record_ranges(timeline)} == {
        str(clip.path)
    }
    assert read_marker(next(decode_rgb_frames(out))[1]) is not None


def test_an_output_name_too_long_for_its_folder_fails_before_analysis(
    tmp_path: Path,
) -> None:
    write_marker_clip(tmp_path / "clip.mp4", frames=30, size=SIZE)
    out = tmp_path / "out" / ("ö" * 124 + ".mp4")  # 252 bytes: its .part is longer
    job = {"clips": [str(tmp_path / "clip.mp4")], "music": str(song(tmp_path)),
           "output": str(out), "quality": "preview"}  # fmt: skip
    status, events, _ = run_engine(job, tmp_path)
    assert status == EXIT_CODES[ErrorCode.OUTPUT_UNWRITABLE]
    failed = events[-1].data
    assert failed["code"] == "output_unwritable"
    assert "too long" in failed["message"] and "shorter" in failed["message"]
    assert not any(e.data.get("stage") == "music" for e in events)
    assert list(out.parent.iterdir()) == []


def _without_root_override() -> None:
    """In the engine's process: let root obey file permissions, as a user does."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.mark.parametrize("output", ["locked/out.mp4", "locked/new folder/out.mp4"])
def test_a_read_only_output_folder_fails_cleanly(tmp_path: Path, output: str) -> None:
    write_marker_clip(tmp_path / "clip.mp4", frames=30, size=SIZE)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    job = {"clips": [str(tmp_path / "clip.mp4")], "music": str(song(tmp_path)),
           "output": str(tmp_path / output), "quality": "preview"}  # fmt: skip
    try:
        status, events, _ = run_engine(job, tmp_path, _without_root_override)
    except subprocess.SubprocessError as error:
        pytest.skip(f"cannot take root's override of permissions away here: {error}")
    finally:
        locked.chmod(0o755)
    assert status == EXIT_CODES[ErrorCode.OUTPUT_UNWRITABLE]
    failed = events[-1].data
    assert failed["code"] == "output_unwritable"
    assert (
        "locked" in failed["message"]
        and "Choose another output folder" in (failed["message"])
    )
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize(
    ("limit_bytes", "filled_by"), [(2_000, "montage.otio"), (60_000, "the video")]
)
def test_a_full_disk_fails_cleanly(
    tmp_path: Path, limit_bytes: int, filled_by: str
) -> None:
    write_marker_clip(tmp_path / "clip.mp4", frames=90, fps=FPS, size=SIZE)
    out = tmp_path / "out" / "montage.mp4"
    job = {"clips": [str(tmp_path / "clip.mp4")], "music": str(song(tmp_path)),
           "output": str(out), "quality": "final", "size": list(SIZE), "seed": 1,
           "export": ["fcp7", "edl"]}  # fmt: skip

    def fill_up() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    status, events, _ = run_engine(job, tmp_path, fill_up)
    assert status == EXIT_CODES[ErrorCode.DISK_FULL]
    failed = events[-1].data
    assert failed["code"] == "disk_full"
    assert filled_by in failed["message"] and "Free some space" in failed["message"]
    assert list(out.parent.iterdir()) == []
