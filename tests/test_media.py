"""The test-media generator round-trips: markers, timestamps, rotation, clicks."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest

from tests.audio_media import (
    decode_audio,
    find_onsets_sec,
    write_click_track,
    write_song,
)
from tests.input_media import write_empty, write_text_as_video
from tests.media import (
    ClipTruth,
    decode_rgb_frames,
    draw_marker_frame,
    is_upright,
    read_marker,
    write_marker_clip,
)

FRAMES = 24
CUTS = [8, 16]
CLIP_CASES = {
    "rotation-0": {},
    "rotation-90": {"rotation": 90},
    "rotation-180": {"rotation": 180},
    "rotation-270": {"rotation": 270},
    "vfr": {"vfr": True},
    "late-start": {"start_sec": 1.5},
    "fps-30": {"fps": 30},
}


@pytest.fixture(scope="module", params=list(CLIP_CASES))
def clip(request: pytest.FixtureRequest, media_dir: Path) -> ClipTruth:
    path = media_dir / f"marker-{request.param}.mp4"
    return write_marker_clip(
        path, frames=FRAMES, cuts=CUTS, **CLIP_CASES[request.param]
    )


@pytest.fixture(scope="module")
def landscape_frames(media_dir: Path) -> list[av.VideoFrame]:
    truth = write_marker_clip(media_dir / "landscape.mp4", frames=12, cuts=[6])
    return _decode_frames(truth.path)


@pytest.fixture(scope="module")
def four_by_three_frames(media_dir: Path) -> list[av.VideoFrame]:
    truth = write_marker_clip(media_dir / "4x3.mp4", frames=12, size=(240, 180))
    return _decode_frames(truth.path)


def _decode_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def _scale(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    return frame.reformat(width=width, height=height, format="rgb24").to_ndarray()


def _fill(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """Scale to cover width x height, then crop the centre: what a montage does."""
    factor = max(width / frame.width, height / frame.height)
    scaled = _scale(
        frame, 2 * round(frame.width * factor / 2), 2 * round(frame.height * factor / 2)
    )
    return _crop_centre(scaled, width, height)


def _crop_centre(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    top, left = (rgb.shape[0] - height) // 2, (rgb.shape[1] - width) // 2
    return np.ascontiguousarray(rgb[top : top + height, left : left + width])


# Marker clips.


def test_markers_read_back_in_order(clip: ClipTruth) -> None:
    markers = [read_marker(rgb) for _, rgb in decode_rgb_frames(clip.path)]

    assert markers == list(range(clip.frames))


def test_timestamps_match_truth(clip: ClipTruth) -> None:
    times_sec = [time_sec for time_sec, _ in decode_rgb_frames(clip.path)]

    assert len(times_sec) == len(clip.times_sec)
    assert times_sec == pytest.approx(clip.times_sec, abs=0.001)


def test_decoded_intervals_follow_fps(clip: ClipTruth) -> None:
    case = CLIP_CASES[clip.path.stem.removeprefix("marker-")]
    times_sec = [time_sec for time_sec, _ in decode_rgb_frames(clip.path)]
    intervals_frames = np.diff(times_sec) * clip.fps

    assert times_sec[0] == pytest.approx(case.get("start_sec", 0.0), abs=0.001)
    if case.get("vfr"):
        assert intervals_frames[0::2] == pytest.approx(0.6, abs=0.03)
        assert intervals_frames[1::2] == pytest.approx(1.4, abs=0.03)
    else:
        assert intervals_frames == pytest.approx(1.0, abs=0.03)


def test_display_rotation_reads_back(clip: ClipTruth) -> None:
    with av.open(str(clip.path)) as container:
        frame = next(container.decode(video=0))

    # Read back in [-180, 180]: 270 arrives as -90, 180 as -180.
    assert frame.rotation % 360 == clip.rotation
    assert (frame.width, frame.height) == clip.size


def test_pictures_display_upright(clip: ClipTruth) -> None:
    width, height = clip.display_size
    pictures = [rgb for _, rgb in decode_rgb_frames(clip.path)]

    assert all(rgb.shape == (height, width, 3) for rgb in pictures)
    assert all(is_upright(rgb) for rgb in pictures)


def test_stored_pictures_are_not_upright_unless_unrotated(clip: ClipTruth) -> None:
    with av.open(str(clip.path)) as container:
        stored = next(container.decode(video=0)).to_ndarray(format="rgb24")

    assert is_upright(stored) == (clip.rotation == 0)


def test_cuts_are_the_largest_jumps(clip: ClipTruth) -> None:
    pictures = [rgb.astype(np.float32) for _, rgb in decode_rgb_frames(clip.path)]
    jumps = np.array([np.abs(b - a).mean() for a, b in pairwise(pictures)])

    # jumps[i] is the change into frame i + 1.
    cut_jumps = jumps[[cut - 1 for cut in clip.cuts]]
    other_jumps = np.delete(jumps, [cut - 1 for cut in clip.cuts])
    assert cut_jumps.min() > 3 * other_jumps.max()
    assert other_jumps.min() > 0.5


# The marker after the changes a montage makes.


@pytest.mark.parametrize(("width", "height"), [(160, 90), (640, 360), (1920, 1080)])
def test_marker_survives_scaling(
    landscape_frames: list[av.VideoFrame], width: int, height: int
) -> None:
    markers = [read_marker(_scale(frame, width, height)) for frame in landscape_frames]

    assert markers == list(range(len(landscape_frames)))


@pytest.mark.parametrize(("width", "height"), [(608, 1080), (1080, 1080), (90, 160)])
def test_marker_survives_centre_crop(
    landscape_frames: list[av.VideoFrame], width: int, height: int
) -> None:
    markers = [read_marker(_fill(frame, width, height)) for frame in landscape_frames]

    assert markers == list(range(len(landscape_frames)))


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (320, 180), (608, 1080)])
def test_marker_survives_filling_from_4_3(
    four_by_three_frames: list[av.VideoFrame], width: int, height: int
) -> None:
    markers = [
        read_marker(_fill(frame, width, height)) for frame in four_by_three_frames
    ]

    assert markers == list(range(len(four_by_three_frames)))


def test_marker_survives_letterbox(landscape_frames: list[av.VideoFrame]) -> None:
    canvas = np.zeros((1920, 1080, 3), dtype=np.uint8)
    for index, frame in enumerate(landscape_frames):
        canvas[656 : 656 + 608] = _scale(frame, 1080, 608)

        assert read_marker(canvas) == index


def test_marker_survives_crf_28_at_160x90(
    landscape_frames: list[av.VideoFrame], tmp_path: Path
) -> None:
    path = tmp_path / "reencoded.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        stream.options = {"crf": "28", "preset": "veryfast"}
        for frame in landscape_frames:
            # A new frame, not the decoded one: its picture type would force an I.
            small = av.VideoFrame.from_ndarray(_scale(frame, 160, 90), format="rgb24")
            container.mux(stream.encode(small))
        container.mux(stream.encode(None))

    markers = [read_marker(rgb) for _, rgb in decode_rgb_frames(path)]

    assert markers == list(range(len(landscape_frames)))


def test_rotated_or_mirrored_marker_reads_none() -> None:
    upright = draw_marker_frame(77)
    wrong_ways = [np.rot90(upright, k) for k in (1, 2, 3)]
    wrong_ways += [upright[:, ::-1], upright[::-1]]

    assert read_marker(upright) == 77
    assert [read_marker(np.ascontiguousarray(rgb)) for rgb in wrong_ways] == [None] * 5
    # A left-right mirror keeps red on top: the cue cannot tell it from upright.
    not_upright = [wrong_ways[index] for index in (0, 1, 2, 4)]
    assert not any(is_upright(np.ascontiguousarray(rgb)) for rgb in not_upright)


def test_garbage_reads_none() -> None:
    noise = np.random.default_rng(3).integers(0, 256, (20, 180, 320, 3), np.uint8)
    plain = [np.full((90, 160, 3), level, np.uint8) for level in (0, 128, 255)]

    assert [read_marker(rgb) for rgb in [*noise, *plain]] == [None] * 23


def test_clip_with_audio_and_gop(media_dir: Path) -> None:
    truth = write_marker_clip(
        media_dir / "gop.mp4", frames=20, gop=6, audio=True, start_sec=0.5
    )

    with av.open(str(truth.path)) as container:
        assert len(container.streams.audio) == 1
        keyframes = [
            packet.is_keyframe
            for packet in container.demux(video=0)
            if packet.size  # the flush packet is empty
        ]
    samples, sample_rate, start_sec = decode_audio(truth.path)
    assert [index for index, key in enumerate(keyframes) if key] == [0, 6, 12, 18]
    assert start_sec == pytest.approx(0.0, abs=0.001)
    assert samples.size / sample_rate == pytest.approx(truth.end_sec, abs=0.03)


# Audio.


@pytest.mark.parametrize(
    ("suffix", "tolerance_sec"),
    [(".wav", 0.002), (".flac", 0.002), (".m4a", 0.010), (".opus", 0.010)],
)
def test_click_onsets_match(media_dir: Path, suffix: str, tolerance_sec: float) -> None:
    path = media_dir / f"clicks{suffix}"
    onsets_sec = write_click_track(
        path, bpm=150, duration_sec=4.0, silent_intro_sec=0.5, silent_outro_sec=0.6,
        bed=True,
    )  # fmt: skip

    samples, sample_rate, start_sec = decode_audio(path)
    found_sec = [start_sec + onset for onset in find_onsets_sec(samples, sample_rate)]

    assert onsets_sec[0] == pytest.approx(0.5)
    assert np.diff(onsets_sec) == pytest.approx(0.4, abs=1 / sample_rate)
    assert onsets_sec[-1] < 3.4
    assert found_sec == pytest.approx(onsets_sec, abs=tolerance_sec)
    assert samples.size / sample_rate == pytest.approx(4.0, abs=0.03)


def test_accented_clicks_are_louder(media_dir: Path) -> None:
    path = media_dir / "accents.wav"
    onsets_sec = write_click_track(path, bpm=120, duration_sec=4.0, accent_every=4)

    samples, sample_rate, _ = decode_audio(path)
    peaks = [
        np.abs(samples[round(t * sample_rate) :][: sample_rate // 100]).max()
        for t in onsets_sec
    ]

    assert [peak > 0.7 for peak in peaks] == [n % 4 == 0 for n in range(len(peaks))]


def test_song_sections_grow_louder(media_dir: Path) -> None:
    path = media_dir / "song.wav"
    sections = [("quiet", 2.0), ("build", 2.0), ("peak", 2.0)]
    beats_sec = write_song(path, bpm=120, sections=sections)

    samples, _, _ = decode_audio(path)
    quiet, build, peak = (np.sqrt(np.mean(part**2)) for part in np.split(samples, 3))

    assert beats_sec == pytest.approx([0.5 * n for n in range(12)])
    assert quiet * 2 < build < peak / 1.2


# Files that are not media.


def test_text_and_empty_files_are_not_media(media_dir: Path) -> None:
    text, empty = media_dir / "notes.mp4", media_dir / "empty.mov"
    write_text_as_video(text)
    write_empty(empty)

    assert empty.stat().st_size == 0
    for path in (text, empty):
        with pytest.raises(av.error.InvalidDataError):
            av.open(str(path))
