"""Clip analysis on generated clips: cuts where they were drawn, features that rank."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from engine import analysis
from engine.analysis import ClipAnalysis, Shot, analyze_clip, shot_score
from engine.analysis_decode import analysis_size
from engine.errors import MediaError
from engine.probe import MediaInfo, probe_media
from tests.media import ClipTruth, write_marker_clip

SIZE = (320, 180)
FPS = 25


# Clips drawn here: textures that fade, pan, flash or blur.


def _texture(seed: int, width: int, height: int, grain: int = 4) -> np.ndarray:
    """Smooth random RGB detail: blocks of grain pixels, softened by a box blur."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // grain + 1, width // grain + 1, 3))
    picture = np.repeat(np.repeat(coarse, grain, axis=0), grain, axis=1)
    return _box_blur(picture[:height, :width].astype(np.float32), 1)


def _box_blur(picture: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2 radius + 1) square, edges repeated."""
    side = 2 * radius + 1
    padded = np.pad(picture, ((radius, radius), (radius, radius), (0, 0)), "edge")
    total = np.zeros_like(picture, dtype=np.float32)
    height, width = picture.shape[:2]
    for dy in range(side):
        for dx in range(side):
            total += padded[dy : dy + height, dx : dx + width]
    return total / (side * side)


def _write_clip(path: Path, pictures: Iterable[np.ndarray], fps: int = FPS) -> Path:
    """Encode RGB pictures (float or uint8, any range clipped to 0..255) as H.264."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for index, picture in enumerate(pictures):
            rgb = np.clip(picture, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _fade_through_black(frames_each: int = 25) -> Iterable[np.ndarray]:
    first, second = _texture(1, *SIZE), _texture(2, *SIZE)
    for index in range(frames_each):
        yield first * (1 - index / frames_each)
    for index in range(frames_each):
        yield second * (index / frames_each)


def _dissolve(frames: int = 30) -> Iterable[np.ndarray]:
    first, second = _texture(3, *SIZE) * 0.6, _texture(4, *SIZE) * 0.8 + 40
    for index in range(frames):
        mix = min(1.0, max(0.0, (index - 5) / (frames - 10)))
        yield first * (1 - mix) + second * mix


def _pan(
    frames: int = 50, step_px: int = 6, grain: int = 6, dropped: int = 0
) -> Iterable[np.ndarray]:
    """A steady pan; dropped frames (the camera's, not ours) go missing mid-way."""
    width, height = SIZE
    wide = _texture(5, width + (frames + dropped) * step_px, height, grain=grain)
    for index in range(frames):
        left = (index + dropped * (index >= frames // 2)) * step_px
        yield wide[:, left : left + width]


def _whip_pan(frames: int = 50) -> Iterable[np.ndarray]:
    """A slow pan that whips fast for a few frames: speed ramps up, then down."""
    width, height = SIZE
    steps_px = [1] * frames
    steps_px[20:29] = [2, 4, 8, 16, 24, 16, 8, 4, 2]
    wide = _texture(10, width + sum(steps_px), height, grain=8)
    left = 0
    for step_px in steps_px:
        yield wide[:, left : left + width]
        left += step_px


def _half_rate_pan(frames: int = 60, step_px: int = 2) -> Iterable[np.ndarray]:
    """Each picture shown twice (12.5 fps in 25), one picture missing mid-way."""
    width, height = SIZE
    wide = _texture(11, width + frames * step_px, height, grain=8)
    for index in range(frames):
        picture = index // 2 + (index >= frames // 2)
        yield wide[:, picture * step_px : picture * step_px + width]


def _flash(frames: int = 40, flash_at: int = 20) -> Iterable[np.ndarray]:
    """Two white frames over a slow pan: the picture after them is the same."""
    width, height = SIZE
    wide = _texture(6, width + frames, height, grain=8)
    for index in range(frames):
        if index in (flash_at, flash_at + 1):
            yield np.full((height, width, 3), 250.0)
        else:
            yield wide[:, index : index + width]


def _still(picture: np.ndarray, frames: int = 20) -> Iterable[np.ndarray]:
    for _ in range(frames):
        yield picture


# Helpers.


def _analyze(path: Path) -> ClipAnalysis:
    return analyze_clip(probe_media(path), use_cache=False)


def _true_cuts_sec(truth: ClipTruth) -> list[float]:
    return [truth.times_sec[cut] - truth.times_sec[0] for cut in truth.cuts]


def _found_cuts_sec(result: ClipAnalysis) -> list[float]:
    return [shot.start_sec for shot in result.shots[1:]]


def _matches(found: list[float], true: list[float], tolerance_sec: float) -> int:
    """Found cuts that each claim one distinct true cut within the tolerance."""
    unclaimed = list(true)
    matched = 0
    for time_sec in found:
        near = [t for t in unclaimed if abs(t - time_sec) <= tolerance_sec]
        if near:
            unclaimed.remove(near[0])
            matched += 1
    return matched


def _shot(**features: float) -> Shot:
    values = {"motion": 0.0, "sharpness": 0.0, "exposure": 0.0} | features
    return Shot(start_sec=0.0, end_sec=1.0, score=0.0, **values)


# Cuts.


@pytest.mark.parametrize(
    ("cuts", "options"),
    [
        ((30, 62, 100, 120), {}),
        ((17, 48, 90), {"vfr": True, "start_sec": 1.5}),
        ((40, 70, 85, 130, 160), {"fps": 30, "size": (640, 360)}),
        ((25, 75, 110), {"codec": "mpeg4"}),
    ],
    ids=["cfr", "vfr-start-1.5", "30fps-640", "mpeg4"],
)
def test_drawn_cuts_are_found_within_one_frame(
    tmp_path: Path, cuts: tuple[int, ...], options: dict[str, Any]
) -> None:
    truth = write_marker_clip(tmp_path / "cuts.mp4", frames=180, cuts=cuts, **options)
    result = _analyze(truth.path)
    found, true = _found_cuts_sec(result), _true_cuts_sec(truth)
    # One frame of the longest interval: VFR clips alternate 0.6 and 1.4 frames.
    tolerance_sec = 1.4 / truth.fps if options.get("vfr") else 1 / truth.fps

    matched = _matches(found, true, tolerance_sec)
    assert matched == len(found), f"false cuts: found {found}, true {true}"
    assert matched == len(true), f"missed cuts: found {found}, true {true}"
    assert result.frames_analyzed == truth.frames
    assert not result.keyframes_only


def test_cuts_land_on_the_first_frame_of_each_shot(tmp_path: Path) -> None:
    truth = write_marker_clip(tmp_path / "exact.mp4", frames=120, cuts=(33, 71))
    result = _analyze(truth.path)

    assert _found_cuts_sec(result) == pytest.approx(_true_cuts_sec(truth), abs=1e-3)


def test_a_clip_without_cuts_is_one_shot_covering_it(tmp_path: Path) -> None:
    truth = write_marker_clip(tmp_path / "one.mp4", frames=100)
    result = _analyze(truth.path)

    assert len(result.shots) == 1
    assert result.shots[0].start_sec == 0.0
    assert result.shots[0].end_sec == pytest.approx(truth.end_sec - truth.times_sec[0])


@pytest.mark.parametrize("options", [{}, {"vfr": True, "start_sec": 1.5}])
def test_shots_cover_the_clip_without_gaps(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    truth = write_marker_clip(
        tmp_path / "cover.mp4", frames=150, cuts=(20, 60, 61, 100), **options
    )
    result = _analyze(truth.path)

    assert result.shots[0].start_sec == 0.0
    assert result.shots[-1].end_sec == pytest.approx(result.duration_sec)
    for shot, following in zip(result.shots, result.shots[1:], strict=False):
        assert shot.end_sec == following.start_sec
        assert shot.end_sec - shot.start_sec >= analysis.MIN_SHOT_SEC


def test_cuts_closer_than_the_shortest_shot_keep_the_stronger(tmp_path: Path) -> None:
    # Frames 60 to 64 are a shot of 0.2 s: too short to be one of its own.
    truth = write_marker_clip(tmp_path / "close.mp4", frames=120, cuts=(30, 60, 65))
    result = _analyze(truth.path)
    found = _found_cuts_sec(result)

    assert len(found) == 2
    assert found[0] == pytest.approx(1.2, abs=1e-3)
    assert found[1] in (pytest.approx(2.4, abs=1e-3), pytest.approx(2.6, abs=1e-3))


@pytest.mark.parametrize(
    "pictures",
    [
        _fade_through_black,
        partial(_fade_through_black, frames_each=8),
        _dissolve,
        _pan,
        partial(_pan, step_px=12),
        partial(_pan, step_px=3, grain=8, dropped=3),
        _whip_pan,
        _half_rate_pan,
        _flash,
    ],
    ids=[
        "fade-through-black",
        "fast-fade",
        "dissolve",
        "steady-pan",
        "fast-pan",
        "pan-with-dropped-frames",
        "whip-pan",
        "half-rate-pan",
        "two-frame-flash",
    ],
)
def test_gradual_changes_and_flashes_make_no_cut(
    tmp_path: Path, pictures: Callable[[], Iterable[np.ndarray]]
) -> None:
    path = _write_clip(tmp_path / "gradual.mp4", pictures())
    result = _analyze(path)

    assert len(result.shots) == 1, _found_cuts_sec(result)


# Features.


def test_a_sharp_picture_scores_sharper_than_its_blurred_copy(tmp_path: Path) -> None:
    sharp = _texture(7, *SIZE, grain=2)
    blurred = _box_blur(sharp, 2)
    sharp_shot = _analyze(_write_clip(tmp_path / "sharp.mp4", _still(sharp))).shots
    blurred_shot = _analyze(_write_clip(tmp_path / "blur.mp4", _still(blurred))).shots

    assert sharp_shot[0].sharpness > blurred_shot[0].sharpness + 0.2


def test_a_black_clip_scores_lower_exposure(tmp_path: Path) -> None:
    grey = _texture(8, *SIZE) * 0.5 + 60
    black = np.zeros_like(grey)
    grey_shot = _analyze(_write_clip(tmp_path / "grey.mp4", _still(grey))).shots[0]
    black_shot = _analyze(_write_clip(tmp_path / "black.mp4", _still(black))).shots[0]

    assert grey_shot.exposure > 0.7
    assert black_shot.exposure < 0.1
    assert black_shot.score < grey_shot.score


def test_a_moving_clip_scores_more_motion_than_a_still_one(tmp_path: Path) -> None:
    still = _analyze(_write_clip(tmp_path / "still.mp4", _still(_texture(9, *SIZE))))
    panned = _analyze(_write_clip(tmp_path / "pan.mp4", _pan()))

    assert still.shots[0].motion < 0.05
    assert panned.shots[0].motion > still.shots[0].motion + 0.2


def test_motion_leaves_out_the_cut_into_each_shot(tmp_path: Path) -> None:
    uncut = write_marker_clip(tmp_path / "uncut.mp4", frames=100)
    cut = write_marker_clip(tmp_path / "cut.mp4", frames=100, cuts=(25, 50, 75))
    reference = _analyze(uncut.path).shots[0].motion

    for shot in _analyze(cut.path).shots:
        assert shot.motion == pytest.approx(reference, rel=0.2)


def test_features_and_score_lie_between_0_and_1(tmp_path: Path) -> None:
    truth = write_marker_clip(tmp_path / "range.mp4", frames=100, cuts=(50,))
    for shot in _analyze(truth.path).shots:
        for value in (shot.motion, shot.sharpness, shot.exposure, shot.score):
            assert type(value) is float
            assert 0.0 <= value <= 1.0
        assert shot.score == pytest.approx(shot_score(shot))


def test_shot_score_weighs_the_features() -> None:
    moving = _shot(motion=1.0)
    sharp = _shot(sharpness=1.0)

    assert shot_score(moving) == pytest.approx(0.4)
    assert shot_score(_shot(motion=1, sharpness=1, exposure=1)) == pytest.approx(1.0)
    assert shot_score(sharp, {"sharpness": 1.0}) == pytest.approx(1.0)
    assert shot_score(moving, {"sharpness": 1.0}) == 0.0
    assert shot_score(moving, {}) == 0.0


# Long clips: keyframes only.


def test_long_clips_are_skimmed_by_keyframe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analysis, "LONG_CLIP_SEC", 1.0)
    gop = 5
    truth = write_marker_clip(
        tmp_path / "long.mp4", frames=150, cuts=(30, 62, 100, 121), gop=gop
    )
    result = _analyze(truth.path)
    # A cut shows at the first keyframe at or after it.
    expected = [
        truth.times_sec[-(-cut // gop) * gop] - truth.times_sec[0] for cut in truth.cuts
    ]

    assert result.keyframes_only
    assert result.frames_analyzed == 150 // gop
    assert _found_cuts_sec(result) == pytest.approx(expected, abs=1e-3)
    assert result.shots[-1].end_sec == pytest.approx(truth.end_sec)


# Cache, progress, round trip.


def test_the_cache_returns_an_equal_result_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth = write_marker_clip(tmp_path / "cached.mp4", frames=80, cuts=(40,))
    info = probe_media(truth.path)
    first = analyze_clip(info)

    def fail(*_: object) -> None:
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(analysis, "_decode_features", fail)
    assert analyze_clip(info) == first


def test_a_copy_elsewhere_hits_the_cache_under_its_own_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth = write_marker_clip(tmp_path / "original.mp4", frames=60)
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(truth.path.read_bytes())
    first = analyze_clip(probe_media(truth.path))
    monkeypatch.setattr(analysis, "_decode_features", None)
    second = analyze_clip(probe_media(copy))

    assert second.path == str(copy.absolute())
    assert second.shots == first.shots


def test_the_analysis_survives_a_round_trip_through_a_dict(tmp_path: Path) -> None:
    truth = write_marker_clip(tmp_path / "trip.mp4", frames=60, cuts=(30,))
    result = _analyze(truth.path)

    assert ClipAnalysis.from_dict(result.to_dict()) == result


def test_progress_rises_to_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis, "PROGRESS_INTERVAL_SEC", 0.0)
    truth = write_marker_clip(tmp_path / "progress.mp4", frames=50)
    fractions: list[float] = []
    analyze_clip(probe_media(truth.path), progress=fractions.append, use_cache=False)

    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert all(0.0 <= fraction <= 1.0 for fraction in fractions)
    assert len(fractions) > 10


# Damaged clips.


def test_a_clip_of_which_nothing_decodes_is_a_media_error(tmp_path: Path) -> None:
    truth = write_marker_clip(tmp_path / "empty.mkv", frames=50)
    info = probe_media(truth.path)
    data = bytearray(truth.path.read_bytes())
    # Keep the Matroska header; every cluster after it becomes noise.
    start = len(data) // 20
    noise = np.random.default_rng(0).integers(0, 256, len(data) - start)
    data[start:] = noise.astype(np.uint8).tobytes()
    truth.path.write_bytes(bytes(data))

    with pytest.raises(
        MediaError, match=re.escape("empty.mkv: no picture could be decoded")
    ):
        analyze_clip(info, use_cache=False)


def test_a_clip_that_is_gone_is_a_media_error(tmp_path: Path) -> None:
    truth = write_marker_clip(tmp_path / "gone.mp4", frames=10)
    info = probe_media(truth.path)
    truth.path.write_text("not a video any more", encoding="utf-8")

    with pytest.raises(MediaError, match=re.escape("gone.mp4")) as raised:
        analyze_clip(info, use_cache=False)
    assert raised.value.path == info.path


def test_a_damaged_clip_keeps_what_decodes_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    truth = write_marker_clip(tmp_path / "damaged.mp4", frames=100, cuts=(50,), gop=10)
    info = probe_media(truth.path)
    data = bytearray(truth.path.read_bytes())
    middle = int(len(data) * 0.3)
    noise = np.random.default_rng(1).integers(0, 256, 3000)
    data[middle : middle + 3000] = noise.astype(np.uint8).tobytes()
    truth.path.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="engine.analysis_decode"):
        result = analyze_clip(info, use_cache=False)

    assert 0 < result.frames_analyzed < truth.frames
    assert result.shots[-1].end_sec == pytest.approx(result.duration_sec)
    assert any("decoded only in part" in record.message for record in caplog.records)


def _info_with(info: MediaInfo, **changes: object) -> MediaInfo:
    return MediaInfo.from_dict(info.to_dict() | changes)


def test_portrait_clips_analyse_at_the_same_pixel_count(tmp_path: Path) -> None:
    truth = write_marker_clip(
        tmp_path / "portrait.mp4", frames=60, size=(180, 320), cuts=(30,)
    )
    info = probe_media(truth.path)

    assert analysis_size(info) == (176, 320)
    assert analysis_size(_info_with(info, width=1920, height=1080)) == (
        320,
        176,
    )
    assert len(_analyze(truth.path).shots) == 2
