"""Smart reframing: the 9:16 and 1:1 windows follow faces, else motion, at three
speeds, and keep every face whole; measured on rendered, generated clips."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import av
import numpy as np
import opentimelineio as otio
import pytest

from engine.detect import SubjectSample, find_faces
from engine.export import build_exports
from engine.export.common import video_clips
from engine.follow import FollowPath, cut_window
from engine.placements import read_placements
from engine.protocol import EventKind, JobSpec, JobSpecError
from engine.reframe import plan_follow_path
from engine.timeline import META, timeline_rate
from tests.audio_media import write_click_track
from tests.engine_runs import run_engine
from tests.subject_media import (
    SubjectTruth,
    write_face_clip,
    write_square_clip,
)

SIZE_9_16 = (180, 320)
SIZE_1_1 = (240, 240)
# The drawn face's oval spans this share of its square each way from the centre.
OVAL_HALF_WIDTH = 0.36


@pytest.fixture(scope="module")
def song(media_dir: Path) -> Path:
    path = media_dir / "reframe song.wav"
    if not path.exists():
        write_click_track(path, bpm=120, duration_sec=3.0)
    return path


@pytest.fixture(scope="module")
def walking_face(media_dir: Path) -> SubjectTruth:
    """One face crossing a 16:9 frame from left to right in 2 s."""
    return write_face_clip(
        media_dir / "walking face.mp4",
        centres=lambda t: [(0.12 + 0.76 * t / 2.0, 0.5)],
    )


def render(
    clip: Path, song: Path, folder: Path, size: tuple[int, int], **options: Any
) -> tuple[Path, otio.schema.Timeline, list[Any]]:
    output = folder / f"reframe {options.get('reframe', 'off')}.mp4"
    job = {
        "clips": [str(clip)],
        "music": str(song),
        "output": str(output),
        "size": list(size),
        "aspect": "9:16" if size[0] < size[1] else "1:1",
        "seed": 3,
        "quality": "preview",
        **options,
    }
    status, events, stderr = run_engine(job, folder)
    assert status == 0, stderr
    timeline = otio.adapters.read_from_file(str(output.with_suffix(".otio")))
    return output, timeline, events


def whole_faces_per_frame(path: Path) -> list[int]:
    """Faces found clear of the frame's edges in each frame of a video."""
    counts = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            faces = find_faces(frame.to_ndarray(format="gray"))
            counts.append(sum(1 for f in faces if f[0] > 0.01 and f[2] < 0.99))
    return counts


def windows_hold_the_truth(
    timeline: otio.schema.Timeline, truth: SubjectTruth, half_width_px: float
) -> list[bool]:
    """For every output frame, whether the drawn subject's box, half_width_px
    either side of its centre, lies inside the window the path put there."""
    fps = timeline_rate(timeline)
    width, height = (
        int(timeline.metadata[META]["width"]),
        int(timeline.metadata[META]["height"]),
    )
    clips = list(timeline.video_tracks()[0].find_clips())
    placements, _ = read_placements(timeline)
    held = []
    for clip, placement in zip(clips, placements, strict=True):
        path = FollowPath.from_dict(clip.metadata[META]["follow"])
        for frame in range(placement.record_start, placement.record_end):
            time_sec = placement.source_sec(frame, fps)
            x, _, zoom = path.window_at(time_sec)
            # The source is scaled to the output's height; the window is its width.
            scale = height / truth.size[1]
            window = width * zoom / (truth.size[0] * scale)
            left, _, right, _ = truth.box_at(time_sec)
            centre = (left + right) / 2 / truth.size[0]
            half = half_width_px / truth.size[0]
            held.append(
                x - window / 2 <= centre - half and centre + half <= x + window / 2
            )
    return held


def test_the_vertical_window_follows_a_face_across_the_frame(
    walking_face: SubjectTruth, song: Path, tmp_path: Path
) -> None:
    followed, timeline, _ = render(
        walking_face.path, song, tmp_path, SIZE_9_16, reframe="normal"
    )
    centred, _, _ = render(walking_face.path, song, tmp_path, SIZE_9_16)

    oval_half_px = OVAL_HALF_WIDTH * 80
    assert all(windows_hold_the_truth(timeline, walking_face, oval_half_px))
    with_follow = whole_faces_per_frame(followed)
    without = whole_faces_per_frame(centred)
    # Haar finds the face whole in every frame of the followed render; the centred
    # crop loses it whenever it walks out of the middle third.
    assert min(with_follow) == 1
    assert sum(without) < 0.7 * len(without)


@pytest.mark.parametrize("size", [SIZE_1_1, SIZE_9_16], ids=["1:1", "9:16"])
def test_the_window_follows_motion_when_there_is_no_face(
    size: tuple[int, int], song: Path, media_dir: Path, tmp_path: Path
) -> None:
    path = media_dir / "moving square.mp4"
    truth = write_square_clip(
        path, centre_x=lambda t: 0.5 + 0.4 * math.sin(math.pi * t)
    )
    followed, timeline, _ = render(truth.path, song, tmp_path, size, reframe="fast")
    centred, _, _ = render(truth.path, song, tmp_path, size)

    assert {c.metadata[META]["follow_subject"] for c in video_clips(timeline)} == {
        "motion"
    }
    # Half the square either side of its centre: the whole square is in the window
    # in nearly every frame (motion is read between samples, so it lags a little).
    held = windows_hold_the_truth(timeline, truth, half_width_px=30 * 0.5)
    assert sum(held) >= 0.9 * len(held)
    side_px = 60 * size[1] / truth.size[1]
    assert bright_share(followed, side_px) > 0.9
    assert bright_share(centred, side_px) < 0.7


def bright_share(path: Path, side_px: float) -> float:
    """The share of frames in which the bright square, side_px pixels a side in
    the output, shows at two thirds of its area or more."""
    shown = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            luma = frame.to_ndarray(format="gray")
            shown.append(np.count_nonzero(luma > 200) >= side_px**2 * 2 / 3)
    return sum(shown) / len(shown)


def test_two_faces_far_apart_widen_the_window_rather_than_cut_one(
    song: Path, media_dir: Path, tmp_path: Path
) -> None:
    truth = write_face_clip(
        media_dir / "two faces.mp4", centres=lambda t: [(0.2, 0.5), (0.8, 0.5)]
    )
    followed, timeline, _ = render(
        truth.path, song, tmp_path, SIZE_9_16, reframe="calm"
    )
    centred, _, _ = render(truth.path, song, tmp_path, SIZE_9_16)

    zooms = [
        zoom
        for clip in video_clips(timeline)
        for zoom in clip.metadata[META]["follow"]["zoom"]
    ]
    assert min(zooms) > 1.5
    # Both faces whole in the followed render (smaller, between black bars); the
    # centred crop shows neither whole.
    assert min(whole_faces_per_frame(followed)) == 2
    assert max(whole_faces_per_frame(centred)) == 0


def jittery_motion(seconds: float, jump_at_sec: float) -> list[SubjectSample]:
    """Motion samples at 6 a second: noisy around 0.3, then around 0.7."""
    rng = np.random.default_rng(5)
    samples = []
    for time_sec in np.arange(0, seconds, 1 / 6):
        base = 0.3 if time_sec < jump_at_sec else 0.7
        centre = (float(base + rng.normal(0, 0.05)), 0.5)
        samples.append(SubjectSample(float(time_sec), [], centre))
    return samples


@pytest.mark.parametrize("axis_window", [(9 / 16 / (16 / 9), 1.0)])
def test_the_three_speeds_follow_calmer_or_faster(
    axis_window: tuple[float, float],
) -> None:
    samples = jittery_motion(seconds=6.0, jump_at_sec=3.0)
    times_sec = np.arange(0, 6.0, 1 / 30)
    travel, settle = {}, {}
    for speed, smoothing_sec in {"calm": 1.0, "normal": 0.4, "fast": 0.12}.items():
        path = plan_follow_path(samples, times_sec, axis_window, smoothing_sec)
        x = np.array(path.x)
        travel[speed] = float(np.abs(np.diff(x)).sum())
        # From the jump, how long until the window is within 0.05 of its new aim.
        after = np.nonzero((times_sec >= 3.0) & (np.abs(x - 0.7) < 0.05))[0]
        settle[speed] = float(times_sec[after[0]] - 3.0)
    assert travel["calm"] < travel["normal"] < travel["fast"]
    assert settle["calm"] > settle["normal"] > settle["fast"]


def test_a_face_at_the_edge_of_a_calm_window_is_held_whole() -> None:
    """A face that moves fast: the calm path lags its aim, but the window still
    moves enough that the face (with its margin) never crosses the window's edge."""
    times_sec = np.arange(0, 3.0, 1 / 30)
    samples = []
    # Samples span the frames shown, first and last included, as detect's do.
    for time_sec in np.linspace(0, times_sec[-1], 18):
        x = 0.15 + 0.7 * time_sec / 3.0
        samples.append(SubjectSample(float(time_sec), [(x - 0.05, 0.4, x + 0.05, 0.6)]))
    window = 0.316
    path = plan_follow_path(samples, times_sec, (window, 1.0), smoothing_sec=1.0)
    for time_sec, x, zoom in zip(times_sec, path.x, path.zoom, strict=True):
        face = 0.15 + 0.7 * time_sec / 3.0
        half = window * zoom / 2
        assert x - half <= face - 0.05 and face + 0.05 <= x + half


def test_a_wide_window_is_cut_with_black_bars_and_the_whole_width() -> None:
    luma = np.tile(np.linspace(16, 235, 640, dtype=np.uint8), (360, 1))
    frame = av.VideoFrame.from_ndarray(
        np.concatenate([luma, np.full((180, 640), 128, np.uint8)]), format="yuv420p"
    )
    zoom = 640 / 180
    picture = cut_window(frame, 0.5, 0.5, zoom, 180, 320).to_ndarray()[:320]
    assert picture.shape == (320, 180)
    # The whole 640-pixel width fits 180 columns: dark on the left, bright right.
    assert picture[160, 2] < 30 and picture[160, -3] > 220
    # Above and below the 101 picture rows: black.
    assert picture[:100].max() <= 17 and picture[-100:].max() <= 17


def test_reframe_is_stored_in_the_job_and_needs_a_crop() -> None:
    spec = JobSpec(clips=["a.mp4"], music="s.wav", output="o.mp4", reframe="fast")
    assert JobSpec.from_json(spec.to_json()).reframe == "fast"
    with pytest.raises(JobSpecError, match="reframe"):
        JobSpec(clips=["a.mp4"], music="s.wav", output="o.mp4", reframe="slow")
    with pytest.raises(JobSpecError, match="crop"):
        JobSpec(
            clips=["a.mp4"], music="s.wav", output="o.mp4", reframe="calm", fit="fit"
        )


def test_exports_say_the_follow_path_is_not_in_the_editor_timeline(
    walking_face: SubjectTruth, song: Path, tmp_path: Path
) -> None:
    _, timeline, events = render(
        walking_face.path, song, tmp_path, SIZE_9_16, reframe="fast", export=["edl"]
    )
    warnings = [e.data["message"] for e in events if e.kind is EventKind.WARNING]
    assert any("EDL" in w and "follows the subject" in w for w in warnings)
    exports = build_exports(timeline, tmp_path / "again", ["fcp7", "mlt"])
    for export in exports:
        assert any("follows the subject" in w for w in export.warnings)


def test_reframing_a_clip_of_the_outputs_shape_says_it_changed_nothing(
    walking_face: SubjectTruth, song: Path, tmp_path: Path
) -> None:
    _, timeline, events = render(
        walking_face.path, song, tmp_path, (320, 180), reframe="normal", aspect="16:9"
    )
    warnings = [e.data for e in events if e.kind is EventKind.WARNING]
    assert [w["code"] for w in warnings] == ["reframe"]
    assert not any("follow" in clip.metadata[META] for clip in video_clips(timeline))


def test_a_close_up_that_fits_the_window_is_not_widened_for_its_margin() -> None:
    """A face 0.30 of a 16:9 picture wide fits its 9:16 window (0.32 wide); with
    its 25 % margin (0.45) it would not. The window stays at the output's size
    (no black bars) and holds the face whole."""
    face = (0.50, 0.30, 0.80, 0.70)
    samples = [SubjectSample(time_sec / 6, faces=[face]) for time_sec in range(13)]
    times_sec = np.arange(0, 2, 1 / 25)
    window = ((9 / 16) / (16 / 9), 1.0)

    path = plan_follow_path(samples, times_sec, window, smoothing_sec=1.0)

    assert max(path.zoom) == pytest.approx(1.0)
    for x in path.x:
        assert x - window[0] / 2 <= face[0] + 1e-9
        assert face[2] <= x + window[0] / 2 + 1e-9


def test_a_calm_window_pushed_by_a_walking_face_moves_without_jumps() -> None:
    """Faces are found 6 times a second. A face that stands, walks off fast and
    stops again pushes the calm window, which lags behind it; the window must
    not move in steps at each detection: per frame no more than the face does,
    give or take."""
    speed_per_sec = 0.4  # of the picture's width, while walking

    def left_at(time_sec: float) -> float:
        return 0.35 + speed_per_sec * min(max(time_sec - 1.5, 0.0), 1.0)

    samples = [
        SubjectSample(t, faces=[(left_at(t), 0.3, left_at(t) + 0.1, 0.5)])
        for t in np.arange(0, 4.01, 1 / 6)
    ]
    times_sec = np.arange(0, 4, 1 / 25)
    window = ((9 / 16) / (16 / 9), 1.0)

    path = plan_follow_path(samples, times_sec, window, smoothing_sec=1.0)

    steps = np.abs(np.diff(path.x))
    assert steps.max() <= 1.5 * speed_per_sec / 25
