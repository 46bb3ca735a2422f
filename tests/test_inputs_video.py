"""Every kind of video people drop: upright, at its aspect, on the right frame.

Each kind is drawn with frame-index markers (tests/input_media.py), then read the
way the render reads it (probe, SourceReader, FrameTransform), analysed, and
rendered together into one montage whose every shot is checked against its source.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import opentimelineio as otio
import pytest

from engine import analysis
from engine.analysis import analyze_clip
from engine.frames import FrameTransform, SourceReader
from engine.probe import MediaInfo, probe_media
from tests.audio_media import write_click_track
from tests.engine_runs import run_engine
from tests.input_media import write_long_marker_clip, write_marker_video
from tests.media import (
    ClipTruth,
    decode_rgb_frames,
    draw_marker_frame,
    is_upright,
    read_marker,
)

FRAMES = 40
RENDER_FPS = 25
RENDER_SIDE = 320
# Mean difference per RGB channel from the drawn picture, in 8-bit levels: a
# clean decode is within 3, tone-mapped PQ within 7; HDR shown as SDR is 20-47.
COLOUR_TOLERANCE = 10.0
# NOTE: FFmpeg's HLG mapping keeps white white but renders mid-tones about 15%
# darker than BT.2408's reference white implies (blue most: 220 becomes 172).
HLG_COLOUR_TOLERANCE = 30.0
# The marker is square: its width over its height, within this, when the
# display aspect (sample aspect, rotation) is applied right.
ASPECT_TOLERANCE = 0.08


def _phone_vfr_times_sec() -> list[float]:
    """About 30 fps with jitter, and a 0.2 s hole where the phone dropped frames."""
    rng = np.random.default_rng(5)
    intervals_sec = rng.uniform(0.7, 1.3, FRAMES - 1) / 30
    intervals_sec[FRAMES // 2] = 0.2
    return [0.0, *np.cumsum(intervals_sec).tolist()]


def _screen_recording_times_sec() -> list[float]:
    """Bursts of three frames at 60 fps, then the screen holds still for a while."""
    holds_sec = [0.4, 1.1, 0.6, 0.9, 0.5, 0.7]
    times_sec: list[float] = []
    start_sec = 0.0
    for hold_sec in holds_sec:
        times_sec += [start_sec + step / 60 for step in range(3)]
        start_sec += 2 / 60 + hold_sec
    return times_sec


PORTRAIT = (180, 320)
HEVC_10BIT = {"codec": "libx265", "pix_fmt": "yuv420p10le"}
KINDS: dict[str, dict[str, Any]] = {
    # Phones and screens.
    "phone rotated 90.mp4": {"rotation": 90, "display_size": PORTRAIT},
    "phone rotated 180.mp4": {"rotation": 180},
    "phone rotated 270.mov": {"rotation": 270, "display_size": PORTRAIT},
    "phone vfr.mp4": {"times_sec": _phone_vfr_times_sec()},
    "screen recording vfr.mp4": {"times_sec": _screen_recording_times_sec()},
    "hevc 10-bit.mp4": HEVC_10BIT,
    "hdr10 pq.mov": HEVC_10BIT | {"hdr": "pq"},
    "iphone hlg rotated.mov": HEVC_10BIT
    | {"hdr": "hlg", "rotation": 90, "display_size": PORTRAIT},
    # Odd sizes, non-square pixels.
    "odd 721x1081.webm": {"display_size": (721, 1081), "codec": "libvpx-vp9"},
    "odd 321x181 yuv444.mp4": {"display_size": (321, 181), "pix_fmt": "yuv444p"},
    "anamorphic 4-3.mov": {"sample_aspect": (4, 3)},
    "pal dvd 16-9.mpg": {
        "display_size": (1024, 576),
        "sample_aspect": (64, 45),
        "codec": "mpeg2video",
    },
    # Pixel formats and levels.
    "yuv444.mp4": {"pix_fmt": "yuv444p"},
    "full range.mp4": {"full_range": True},
    # Timing and headers.
    "late start.mp4": {"start_sec": 10.0},
    "late start, sound from 0.mkv": {"start_sec": 10.0, "audio": True},
    "no audio.mp4": {},
    "browser recording.webm": {
        "codec": "libvpx-vp9",
        "streamed": True,
        "audio": True,
    },
}
# Codec and container: the pixel format each codec stores by default.
CODEC_MATRIX = [
    ("libvpx-vp9", "yuv420p", ".webm"),
    ("libvpx-vp9", "yuv420p", ".mkv"),
    ("prores_ks", "yuv422p10le", ".mov"),
    ("prores_ks", "yuv422p10le", ".mkv"),
    ("mjpeg", "yuvj420p", ".avi"),
    ("mjpeg", "yuvj420p", ".mov"),
    ("mpeg2video", "yuv420p", ".mpg"),
    ("mpeg2video", "yuv420p", ".mkv"),
    ("mpeg4", "yuv420p", ".avi"),
    ("mpeg4", "yuv420p", ".mkv"),
    ("mpeg4", "yuv420p", ".mov"),
]
KINDS |= {
    f"{codec}{suffix}": {"codec": codec, "pix_fmt": pix_fmt}
    for codec, pix_fmt, suffix in CODEC_MATRIX
}


@pytest.fixture(scope="module")
def kinds(media_dir: Path) -> dict[str, ClipTruth]:
    folder = media_dir / "video kinds"
    folder.mkdir(exist_ok=True)
    return {
        name: write_marker_video(folder / name, **({"frames": FRAMES} | spec))
        for name, spec in KINDS.items()
    }


def test_generated_kinds_are_what_they_claim(kinds: dict[str, ClipTruth]) -> None:
    """The inputs really are of each kind, or the tests above prove nothing."""
    facts = {name: probe_media(truth.path) for name, truth in kinds.items()}
    assert facts["phone rotated 270.mov"].rotation == 270
    assert facts["phone vfr.mp4"].variable_frame_rate
    assert facts["screen recording vfr.mp4"].variable_frame_rate
    assert facts["hevc 10-bit.mp4"].bit_depth == 10
    assert facts["odd 721x1081.webm"].height == 1081
    assert facts["odd 321x181 yuv444.mp4"].width == 321
    assert facts["pal dvd 16-9.mpg"].sample_aspect == (64, 45)
    assert facts["pal dvd 16-9.mpg"].width == 720
    assert facts["anamorphic 4-3.mov"].width == 240
    assert facts["full range.mp4"].pixel_format == "yuvj420p"
    assert facts["late start.mp4"].start_sec == pytest.approx(10.0)
    assert facts["no audio.mp4"].audio_streams == []
    assert facts["browser recording.webm"].audio_streams
    with av.open(str(kinds["browser recording.webm"].path)) as container:
        assert container.duration is None
    with av.open(str(kinds["hdr10 pq.mov"].path)) as container:
        frame = next(container.decode(video=0))
        assert (frame.color_trc, frame.color_primaries) == (16, 9)
    for codec, _, suffix in CODEC_MATRIX:
        info = facts[f"{codec}{suffix}"]
        assert info.codec == {"libvpx-vp9": "vp9", "prores_ks": "prores"}.get(
            codec, codec
        )


# Reading pictures back.


def fitted_size(display_size: tuple[float, float], side: int) -> tuple[int, int]:
    """An even size of the display aspect whose longer side is `side`."""
    width, height = display_size
    if width >= height:
        return side, 2 * round(side * height / width / 2)
    return 2 * round(side * width / height / 2), side


def shown_pictures(
    info: MediaInfo, media_times_sec: list[float], size: tuple[int, int]
) -> list[np.ndarray]:
    """RGB pictures the render's frame path makes at media times (from frame 0)."""
    transform = FrameTransform(*size, "fit", {}, Fraction(RENDER_FPS))
    reader = SourceReader(
        info.path, transform, info.rotation, info.sample_aspect, info.fps_fraction
    )
    try:
        return [
            reader.frame_at(info.start_sec + time_sec).to_ndarray(format="rgb24")
            for time_sec in media_times_sec
        ]
    finally:
        reader.close()


def marker_aspect(rgb: np.ndarray) -> float:
    """Width over height of the marker's outer white ring.

    Measured along the ring's own sides: its left side through the centre row,
    then its top side. Other white (an encoded edge of the sliding block) never
    touches them. The ring is a few pixels thick: the longest run counts.
    """
    low, high = rgb.min(axis=2).astype(int), rgb.max(axis=2).astype(int)
    white = (low > 170) & (high - low < 50)
    centre_row = white.shape[0] // 2
    left = int(np.flatnonzero(white[centre_row])[0])
    top, bottom = max(
        (_white_run(white[:, x], centre_row) for x in range(left, left + 4)),
        key=lambda run: run[1] - run[0],
    )
    first, last = max(
        (_white_run(white[y], left + 1) for y in range(top, top + 4)),
        key=lambda run: run[1] - run[0],
    )
    return (last - first + 1) / (bottom - top + 1)


def _white_run(line: np.ndarray, inside: int) -> tuple[int, int]:
    """The first and last pixel of the white run through `inside`, over 1 px gaps
    (first > last when `inside` is not white)."""
    closed = line.copy()
    closed[1:-1] |= line[:-2] & line[2:]
    if not closed[inside]:
        return inside, inside - 1
    first = last = inside
    while first > 0 and closed[first - 1]:
        first -= 1
    while last < closed.size - 1 and closed[last + 1]:
        last += 1
    return first, last


def colour_error(rgb: np.ndarray, truth: ClipTruth, index: int) -> float:
    """The largest mean difference per channel from the picture as drawn."""
    drawn = draw_marker_frame(index, size=truth.display_size)
    height, width = rgb.shape[:2]
    expected = (
        av.VideoFrame.from_ndarray(drawn, format="rgb24")
        .reformat(width=width, height=height, interpolation="AREA")
        .to_ndarray()
    )
    difference = np.abs(rgb.astype(np.float32) - expected.astype(np.float32))
    return float(difference.mean(axis=(0, 1)).max())


def media_sec(truth: ClipTruth, index: int) -> float:
    return truth.times_sec[index] - truth.times_sec[0]


def nearest_index(truth: ClipTruth, time_sec: float) -> int:
    """The frame the render shows at media time time_sec: the nearest, the earlier
    on a tie (timestamps are rounded to 1 us)."""
    target = truth.times_sec[0] + time_sec
    return min(
        range(len(truth.times_sec)),
        key=lambda i: (round(abs(truth.times_sec[i] - target), 6), i),
    )


# The frame path, kind by kind.


@pytest.mark.parametrize("name", list(KINDS))
def test_probe_finds_the_display_aspect_and_length(
    name: str, kinds: dict[str, ClipTruth]
) -> None:
    truth = kinds[name]
    info = probe_media(truth.path)
    shown_width, shown_height = info.display_size
    want_width, want_height = truth.display_size

    assert shown_width / shown_height == pytest.approx(want_width / want_height, 0.01)
    # The last frame's length is the muxer's guess: allow one and a half frames.
    length_sec = truth.end_sec - truth.times_sec[0]
    assert info.duration_sec == pytest.approx(length_sec, abs=1.5 / 25)


@pytest.mark.parametrize("name", list(KINDS))
def test_each_kind_shows_the_right_frame_upright_at_its_aspect(
    name: str, kinds: dict[str, ClipTruth]
) -> None:
    truth = kinds[name]
    info = probe_media(truth.path)
    indices = [0, truth.frames // 2, truth.frames - 1]
    size = fitted_size(info.display_size, RENDER_SIDE)
    pictures = shown_pictures(info, [media_sec(truth, i) for i in indices], size)

    for index, rgb in zip(indices, pictures, strict=True):
        assert read_marker(rgb) == index, f"{name}: frame {index}"
        assert is_upright(rgb), f"{name}: frame {index} is not upright"
        assert marker_aspect(rgb) == pytest.approx(1.0, abs=ASPECT_TOLERANCE), name
        tolerance = HLG_COLOUR_TOLERANCE if "hlg" in name else COLOUR_TOLERANCE
        assert colour_error(rgb, truth, index) < tolerance, name


@pytest.mark.parametrize("name", list(KINDS))
def test_each_kind_is_analysed_frame_by_frame(
    name: str, kinds: dict[str, ClipTruth]
) -> None:
    truth = kinds[name]
    info = probe_media(truth.path)
    result = analyze_clip(info, use_cache=False)

    assert result.frames_analyzed == truth.frames
    assert len(result.shots) == 1
    assert result.shots[-1].end_sec == pytest.approx(info.duration_sec)


def test_hdr_exposure_is_scored_as_the_render_shows_it(
    kinds: dict[str, ClipTruth],
) -> None:
    """PQ code values read as SDR would look dim; the same picture in SDR is the
    reference."""
    sdr = analyze_clip(probe_media(kinds["no audio.mp4"].path), use_cache=False)
    hdr = analyze_clip(probe_media(kinds["hdr10 pq.mov"].path), use_cache=False)

    assert hdr.shots[0].exposure == pytest.approx(sdr.shots[0].exposure, abs=0.05)


def test_a_browser_recording_cut_off_keeps_what_was_recorded(
    kinds: dict[str, ClipTruth], tmp_path: Path
) -> None:
    """A tab closed mid-recording: no duration, no index, and no end."""
    whole = kinds["browser recording.webm"]
    cut = tmp_path / "cut off.webm"
    data = whole.path.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    info = probe_media(cut)

    assert 0.3 < info.duration_sec < whole.end_sec - 0.3
    last = round(info.duration_sec * 25) - 2
    size = fitted_size(info.display_size, RENDER_SIDE)
    pictures = shown_pictures(info, [media_sec(whole, 0), media_sec(whole, last)], size)
    assert [read_marker(rgb) for rgb in pictures] == [0, last]
    assert analyze_clip(info, use_cache=False).frames_analyzed >= last


# A two-hour source.

TWO_HOURS_SEC = 7200.0
PERIOD_FRAMES = 60


@pytest.fixture(scope="module")
def two_hours(media_dir: Path) -> ClipTruth:
    """All-intra: every frame a keyframe, the worst case for a keyframe skim."""
    return write_long_marker_clip(
        media_dir / "two hours.mkv",
        duration_sec=TWO_HOURS_SEC,
        period_frames=PERIOD_FRAMES,
    )


def test_a_two_hour_clip_is_analysed_from_a_bounded_number_of_frames(
    two_hours: ClipTruth,
) -> None:
    info = probe_media(two_hours.path)
    result = analyze_clip(info, use_cache=False)

    assert info.duration_sec == pytest.approx(TWO_HOURS_SEC)
    assert result.keyframes_only
    # 7200 keyframes, of which only an even spread is decoded.
    assert result.frames_analyzed <= analysis.LONG_CLIP_MAX_FRAMES + 1
    assert result.frames_analyzed >= analysis.LONG_CLIP_MAX_FRAMES // 2
    assert result.shots[0].start_sec == 0.0
    assert result.shots[-1].end_sec == pytest.approx(TWO_HOURS_SEC)


def test_a_short_montage_from_a_two_hour_clip_shows_its_frames(
    two_hours: ClipTruth, tmp_path: Path
) -> None:
    song = tmp_path / "song.wav"
    clicks = write_click_track(song, bpm=120, duration_sec=4.0, bed=True)
    out = tmp_path / "from two hours.mp4"
    job = {"clips": [str(two_hours.path)], "music": str(song), "output": str(out),
           "quality": "preview", "size": [RENDER_SIDE, 180], "fps": RENDER_FPS,
           "style": "action", "seed": 4}  # fmt: skip
    status, _, stderr = run_engine(job, tmp_path)
    assert status == 0, stderr

    timeline = otio.adapters.read_from_file(str(out.with_suffix(".otio")))
    markers = [read_marker(rgb) for _, rgb in decode_rgb_frames(out)]
    shots = list(_shots(timeline))
    assert len(shots) >= 2
    assert max(in_sec for _, in_sec, _, _ in shots) > 60, "all shots from the start"
    for _, in_sec, start, length in shots:
        for offset in (0, length // 2):
            index = nearest_index(two_hours, in_sec + offset / RENDER_FPS)
            assert markers[start + offset] == index % PERIOD_FRAMES
    _assert_cuts_on_clicks(timeline, clicks)


# One montage of every kind.


@pytest.fixture(scope="module")
def montage(
    kinds: dict[str, ClipTruth], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A square render, fit (not crop), so both portrait and landscape show whole."""
    folder = tmp_path_factory.mktemp("montage of every kind")
    stopped = _stopped_at_once(kinds["browser recording.webm"], folder)
    song = folder / "song.wav"
    clicks = write_click_track(song, bpm=120, duration_sec=24.0, bed=True)
    out = folder / "every kind.mp4"
    job = {"clips": [*(str(truth.path) for truth in kinds.values()), str(stopped)],
           "music": str(song), "output": str(out), "quality": "preview",
           "aspect": "1:1", "size": [RENDER_SIDE, RENDER_SIDE], "fit": "fit",
           "fps": RENDER_FPS, "style": "action", "seed": 11}  # fmt: skip
    status, events, stderr = run_engine(job, folder)
    assert status == 0, stderr
    return {
        "timeline": otio.adapters.read_from_file(str(out.with_suffix(".otio"))),
        "frames": [rgb for _, rgb in decode_rgb_frames(out)],
        "clicks": clicks,
        "events": events,
        "stopped": stopped,
        "by_path": {str(truth.path): (name, truth) for name, truth in kinds.items()},
    }


@pytest.mark.slow
def test_the_montage_uses_every_kind(montage: dict[str, Any]) -> None:
    used = {
        montage["by_path"][path][0] for path, _, _, _ in _shots(montage["timeline"])
    }
    assert sorted(set(KINDS) - used) == []


@pytest.mark.slow
def test_a_recording_stopped_before_its_first_picture_is_named_and_skipped(
    montage: dict[str, Any],
) -> None:
    events = montage["events"]
    skipped = [
        event.data
        for event in events
        if event.kind.value == "warning" and event.data["code"] == "clip_skipped"
    ]
    assert [warning["path"] for warning in skipped] == [str(montage["stopped"])]
    message = skipped[0]["message"]
    assert message.startswith(montage["stopped"].name)
    assert "recording cut off" in message
    assert "Copy it again" in message


def _stopped_at_once(recording: ClipTruth, folder: Path) -> Path:
    """A browser recording whose tab closed before its first picture: the header
    and nothing from the first Matroska cluster on."""
    data = recording.path.read_bytes()
    stopped = folder / "browser recording stopped at once.webm"
    stopped.write_bytes(data[: data.index(b"\x1f\x43\xb6\x75")])
    return stopped


@pytest.mark.slow
def test_every_shot_shows_its_frame_upright_at_its_aspect(
    montage: dict[str, Any],
) -> None:
    frames = montage["frames"]
    for path, in_sec, start, length in _shots(montage["timeline"]):
        name, truth = montage["by_path"][path]
        for offset in (0, length // 2):
            rgb = frames[start + offset]
            picture = _inside_bars(rgb)
            index = nearest_index(truth, in_sec + offset / RENDER_FPS)
            where = f"{name} at output frame {start + offset}"
            assert read_marker(rgb) == index, where
            assert is_upright(picture), where
            assert marker_aspect(rgb) == pytest.approx(1.0, abs=ASPECT_TOLERANCE), where
            shown_aspect = picture.shape[1] / picture.shape[0]
            want_aspect = truth.display_size[0] / truth.display_size[1]
            assert shown_aspect == pytest.approx(want_aspect, rel=0.03), where


@pytest.mark.slow
def test_hdr_shots_are_not_washed_out(montage: dict[str, Any]) -> None:
    """Shown as SDR, PQ white is a 58% grey: the marker's white ring stays white."""
    frames = montage["frames"]
    hdr_shots = 0
    for path, _, start, length in _shots(montage["timeline"]):
        name, _ = montage["by_path"][path]
        if "hdr" not in name and "hlg" not in name:
            continue
        hdr_shots += 1
        rgb = frames[start + length // 2]
        height, width = rgb.shape[:2]
        centre = rgb[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3]
        assert centre.min(axis=2).max() > 215, name
    assert hdr_shots >= 2


@pytest.mark.slow
def test_cuts_land_on_the_clicks(montage: dict[str, Any]) -> None:
    _assert_cuts_on_clicks(montage["timeline"], montage["clicks"])


def _shots(timeline: otio.schema.Timeline) -> Iterator[tuple[str, float, int, int]]:
    """(source path, media in point, record start frame, length in frames)."""
    track = timeline.video_tracks()[0]
    for clip in track.find_clips():
        start = track.range_of_child(clip).start_time.rescaled_to(RENDER_FPS)
        length = clip.source_range.duration.rescaled_to(RENDER_FPS)
        yield (
            clip.media_reference.target_url,
            clip.metadata["montage_ai"]["in_sec"],
            round(start.value),
            round(length.value),
        )


def _assert_cuts_on_clicks(timeline: otio.schema.Timeline, clicks: list[float]) -> None:
    start_sec = timeline.metadata["montage_ai"]["music"]["start_sec"]
    cuts = [start for _, _, start, _ in _shots(timeline)][1:]
    assert cuts
    for frame in cuts:
        nearest = min(abs(frame / RENDER_FPS - (click - start_sec)) for click in clicks)
        assert nearest <= 1 / RENDER_FPS, f"cut at frame {frame} is {nearest:.3f} s off"


def _inside_bars(rgb: np.ndarray) -> np.ndarray:
    """The picture without the black bars that fit it into the frame."""
    # The style's vignette darkens the picture's edges, but never all along them.
    luma = rgb.mean(axis=2)
    rows = np.flatnonzero(luma.max(axis=1) > 30)
    columns = np.flatnonzero(luma.max(axis=0) > 30)
    return rgb[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
