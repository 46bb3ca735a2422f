"""Looks through the real engine: a user's LUT, whip pans on the beat, slow motion
that keeps the beat grid, and stabilize and denoise per clip, each measured in the
rendered MP4."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import opentimelineio as otio
import pytest

from engine.placements import ClipPlacement, read_placements
from engine.protocol import EXIT_CODES, ErrorCode, EventKind
from tests.audio_media import write_click_track, write_song
from tests.engine_runs import run_engine
from tests.looks_media import (
    FPS,
    horizontal_detail,
    luma,
    noise_level,
    shift_px,
    write_noisy_clip,
    write_shaking_clip,
)
from tests.media import decode_rgb_frames, read_marker, write_marker_clip

LUTS = Path(__file__).parents[1] / "resources" / "luts"


def render(job: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Run a job; its frames, timeline, placements and joins."""
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / "montage.mp4"
    job = {"quality": "preview", "size": [320, 180], "fps": FPS, "seed": 4,
           "output": str(output), **job}  # fmt: skip
    status, events, stderr = run_engine(job, folder)
    assert status == 0, stderr[-3000:]
    timeline = otio.adapters.read_from_file(str(output.with_suffix(".otio")))
    placements, joins = read_placements(timeline)
    frames = [rgb for _, rgb in decode_rgb_frames(output)]
    return {"frames": frames, "timeline": timeline, "placements": placements,
            "joins": joins, "events": events}  # fmt: skip


def cut_seconds(result: dict[str, Any]) -> list[float]:
    start_sec = result["timeline"].metadata["montage_ai"]["music"]["start_sec"]
    return [start_sec + p.record_start / FPS for p in result["placements"][1:]]


def assert_on_beats(result: dict[str, Any], beats_sec: list[float]) -> None:
    for cut_sec in cut_seconds(result):
        nearest = min(abs(cut_sec - beat) for beat in beats_sec)
        assert nearest <= 1 / FPS, f"a cut at {cut_sec:.3f} s is {nearest:.3f} s off"


@pytest.fixture(scope="module")
def marker_clips(media_dir: Path) -> list[Path]:
    folder = media_dir / "looks clips"
    folder.mkdir(exist_ok=True)
    paths = [folder / "a30.mp4", folder / "b30.mp4"]
    for path, cuts in zip(paths, ([100], [60, 170]), strict=True):
        if not path.exists():
            write_marker_clip(path, frames=240, fps=FPS, cuts=cuts)
    return paths


@pytest.fixture(scope="module")
def whip(marker_clips: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Whip pans on every cut, graded by a user's LUT in an awkward folder."""
    folder = tmp_path_factory.mktemp("whip")
    looks = folder / "my looks: 'grey', [1]=ü"
    looks.mkdir()
    cube = looks / "mono ü's.cube"
    shutil.copy(LUTS / "black_white.cube", cube)
    song = folder / "clicks.wav"
    clicks = write_click_track(song, bpm=120, duration_sec=6.0, bed=True)
    job = {"clips": [str(p) for p in marker_clips], "music": str(song),
           "style": "action", "transition": "whip", "lut": str(cube)}  # fmt: skip
    return render(job, folder / "out"), clicks


def test_a_users_lut_grades_every_frame(whip: Any) -> None:
    result, _ = whip
    assert (
        result["timeline"].metadata["montage_ai"]["grade"]["lut"].endswith("ü's.cube")
    )
    colour = [
        float(np.ptp(rgb.astype(int), axis=-1).mean()) for rgb in result["frames"]
    ]
    assert max(colour) < 3, f"a frame keeps colour ({max(colour):.1f}) under the LUT"


def test_whip_pans_blur_across_cuts_that_stay_on_the_beat(whip: Any) -> None:
    result, clicks = whip
    frames, placements, joins = result["frames"], result["placements"], result["joins"]
    assert joins and {join.kind for join in joins} == {"whip"}
    assert_on_beats(result, clicks)
    sharp = np.median(
        [horizontal_detail(frames[p.record_start + 8]) for p in placements[1:-1]]
    )
    for join in joins:
        blurred = max(
            horizontal_detail(frames[n]) for n in (join.frame - 1, join.frame)
        )
        assert blurred < 0.6 * sharp, f"the whip at {join.frame} is not blurred"
        # Outside the window each shot shows its own frame, sharp and readable.
        before, after = placements[join.index], placements[join.index + 1]
        for placement, number in ((before, join.frame - join.before - 1),
                                  (after, join.frame + join.after)):  # fmt: skip
            assert read_marker(frames[number]) == shown_index(placement, number)


def shown_index(placement: ClipPlacement, number: int) -> int:
    """The source frame index at output frame `number` (30 fps sources from 0)."""
    return round(placement.source_sec(number, FPS) * FPS)


def test_slow_motion_plays_quiet_shots_at_half_speed_on_the_beat(
    marker_clips: list[Path], tmp_path: Path
) -> None:
    song = tmp_path / "song.wav"
    beats = write_song(song, bpm=120, sections=(("quiet", 8.0), ("peak", 6.0)))
    job = {"clips": [str(p) for p in marker_clips], "music": str(song),
           "style": "dynamic", "slow_motion": 0.5, "lut": "none"}  # fmt: skip
    result = render(job, tmp_path / "out")
    assert_on_beats(result, beats)
    speeds = {}
    for clip, placement in zip(
        result["timeline"].video_tracks()[0].find_clips(),
        result["placements"],
        strict=True,
    ):
        section = clip.metadata["montage_ai"]["section"]
        warps = [
            e.time_scalar
            for e in clip.effects
            if isinstance(e, otio.schema.LinearTimeWarp)
        ]
        assert warps == ([0.5] if section == "quiet" else []), clip.name
        speeds[placement.record_start] = (section, source_rate(result, placement))
    measured: dict[bool, list[float]] = {True: [], False: []}
    for section, rate in speeds.values():
        if rate is not None:
            measured[section == "quiet"].append(rate)
    assert measured[True] and measured[False], speeds
    assert all(abs(rate - 0.5) < 0.05 for rate in measured[True]), measured
    assert all(abs(rate - 1.0) < 0.05 for rate in measured[False]), measured


def source_rate(result: dict[str, Any], placement: ClipPlacement) -> float | None:
    """Source frames per output frame over a shot, from its markers; None if the
    shot is too short or inside a transition."""
    shown = [
        (n, read_marker(result["frames"][n])) for n in plain_frames(result, placement)
    ]
    known = [(n, index) for n, index in shown if index is not None]
    if len(known) < 12:
        return None
    slope = np.polyfit([n for n, _ in known], [index for _, index in known], 1)[0]
    return float(slope)


@pytest.fixture(scope="module")
def cleanup(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One edit of a shaking clip and a noisy one, without and with clean-up."""
    folder = tmp_path_factory.mktemp("cleanup")
    shaking, noisy = folder / "shaking.mp4", folder / "noisy.mp4"
    write_shaking_clip(shaking, frames=150)
    write_noisy_clip(noisy, frames=150)
    song = folder / "clicks.wav"
    write_click_track(song, bpm=120, duration_sec=8.0)
    job = {"clips": [str(shaking), str(noisy)], "music": str(song),
           "style": "dynamic", "lut": "none"}  # fmt: skip
    plain = render(job, folder / "plain")
    cleaned = render(
        job | {"stabilize_clips": [str(shaking)], "denoise_clips": [str(noisy)]},
        folder / "cleaned",
    )
    return plain, cleaned


def shots_of(result: dict[str, Any], name: str) -> list[ClipPlacement]:
    return [p for p in result["placements"] if Path(p.path).name == name]


def plain_frames(result: dict[str, Any], placement: ClipPlacement) -> list[int]:
    """A shot's output frames outside any transition."""
    inside = {
        n for j in result["joins"] for n in range(j.frame - j.before, j.frame + j.after)
    }
    return [
        n
        for n in range(placement.record_start, placement.record_end)
        if n not in inside
    ]


def test_stabilize_steadies_only_the_clip_it_is_asked_for(cleanup: Any) -> None:
    plain, cleaned = cleanup
    assert [p.cleanup for p in cleaned["placements"]] == [
        ("stabilize",) if "shaking" in p.path else ("denoise",)
        for p in cleaned["placements"]
    ]
    assert all(not p.cleanup for p in plain["placements"])
    jitter = {}
    for label, result in (("plain", plain), ("cleaned", cleaned)):
        moves = [
            shift_px(result["frames"][n - 1], result["frames"][n])
            for p in shots_of(result, "shaking.mp4")
            for n in plain_frames(result, p)[2:]
        ]
        assert len(moves) > 20
        jitter[label] = float(np.mean(moves))
    assert jitter["plain"] > 3, jitter
    assert jitter["cleaned"] < 0.5 * jitter["plain"], jitter


def test_denoise_cleans_only_the_clip_it_is_asked_for(cleanup: Any) -> None:
    plain, cleaned = cleanup
    noise = {}
    for label, result in (("plain", plain), ("cleaned", cleaned)):
        noise[label] = float(np.mean([
            noise_level(result["frames"][n])
            for p in shots_of(result, "noisy.mp4") for n in plain_frames(result, p)[::5]
        ]))  # fmt: skip
    assert noise["plain"] > 6, noise
    assert noise["cleaned"] < 0.5 * noise["plain"], noise


def test_a_broken_lut_fails_the_job_at_once_naming_the_file(
    marker_clips: list[Path], tmp_path: Path
) -> None:
    cube = tmp_path / "half a look.cube"
    cube.write_text("LUT_3D_SIZE 17\n0 0 0\n", encoding="utf-8")
    song = tmp_path / "clicks.wav"
    write_click_track(song, bpm=120, duration_sec=3.0)
    job = {"clips": [str(marker_clips[0])], "music": str(song),
           "output": str(tmp_path / "out.mp4"), "lut": str(cube)}  # fmt: skip
    status, events, _ = run_engine(job, tmp_path)
    assert status == EXIT_CODES[ErrorCode.INVALID_JOB]
    failed = events[-1]
    assert failed.kind is EventKind.FAILED
    assert "half a look.cube" in failed.data["message"]
    assert "1 colours where a 17-point cube needs 4913" in failed.data["message"]
    assert not any(e.kind is EventKind.STAGE for e in events), "it analysed first"


def test_flashes_on_downbeats_are_a_job_option(
    marker_clips: list[Path], tmp_path: Path
) -> None:
    song = tmp_path / "song.wav"
    beats = write_song(song, bpm=120, sections=(("quiet", 4.0), ("peak", 8.0)))
    job = {"clips": [str(p) for p in marker_clips], "music": str(song),
           "style": "action", "downbeat_flash": True, "lut": "none"}  # fmt: skip
    result = render(job, tmp_path / "out")
    assert_on_beats(result, beats)
    flashes = [join for join in result["joins"] if join.kind == "flash"]
    assert len(flashes) >= 2, "the peak has no flash"
    for join in flashes:
        flashed = luma(result["frames"][join.frame]).mean()
        shot = luma(result["frames"][join.frame + join.after + 1]).mean()
        assert flashed > 200 and flashed > shot + 40, (join.frame, flashed, shot)


@pytest.fixture(scope="module")
def source_frames(marker_clips: list[Path]) -> dict[str, list[np.ndarray]]:
    """Every frame of each marker clip, as the render reads it (same size)."""
    return {
        str(path): [rgb.astype(np.float64) for _, rgb in decode_rgb_frames(path)]
        for path in marker_clips
    }


def fitted_weight(
    shown: np.ndarray, outgoing: np.ndarray, incoming: np.ndarray
) -> tuple[float, float]:
    """The share of `incoming` in `shown` by least squares, and how far the blend
    of that share lies from `shown` compared with the nearer of the two pictures
    (under 1: the blend explains the frame better than either does alone)."""
    difference = incoming - outgoing
    weight = float(
        np.vdot(shown - outgoing, difference) / np.vdot(difference, difference)
    )
    blend_error = np.linalg.norm(shown - outgoing - weight * difference)
    pure_error = min(np.linalg.norm(shown - outgoing), np.linalg.norm(shown - incoming))
    return weight, float(blend_error / pure_error)


@pytest.mark.parametrize("kind", ["crossfade", "dip_black", "dip_white"])
def test_transitions_blend_the_two_shots_around_a_cut_on_the_beat(
    kind: str,
    marker_clips: list[Path],
    source_frames: dict[str, list[np.ndarray]],
    tmp_path: Path,
) -> None:
    song = tmp_path / "clicks.wav"
    clicks = write_click_track(song, bpm=150, duration_sec=12.0, bed=True)
    # The documentary style's grade is neutral, so shots show their sources' colours.
    job = {"clips": [str(p) for p in marker_clips], "music": str(song),
           "style": "documentary", "transition": kind, "lut": "none"}  # fmt: skip
    result = render(job, tmp_path / "out")
    frames, placements, joins = result["frames"], result["placements"], result["joins"]
    assert len(joins) >= 2 and {join.kind for join in joins} == {kind}
    assert_on_beats(result, clicks)
    for join in joins:
        before, after = placements[join.index], placements[join.index + 1]
        start, end = join.frame - join.before, join.frame + join.after
        assert end - start >= 2, f"the {kind} at {join.frame} has no window"
        # Just outside the window each shot shows its own frame, unmixed.
        assert read_marker(frames[start - 1]) == shown_index(before, start - 1)
        assert read_marker(frames[end]) == shown_index(after, end)
        for number in range(start, end):
            outgoing = source_frames[before.path][shown_index(before, number)]
            incoming = source_frames[after.path][shown_index(after, number)]
            shown = frames[number].astype(np.float64)
            if kind == "crossfade":
                expected = (number - start + 0.5) / (end - start)
                weight, relative_error = fitted_weight(shown, outgoing, incoming)
            else:
                side = outgoing if number < join.frame else incoming
                steps = join.before if number < join.frame else join.after
                into = number - start if number < join.frame else end - 1 - number
                expected = (into + 0.5) / steps  # the share of black or white
                colour = np.full_like(side, 0.0 if kind == "dip_black" else 255.0)
                weight, relative_error = fitted_weight(shown, side, colour)
            assert abs(weight - expected) < 0.12, (join.frame, number, weight)
            if 0.3 < expected < 0.7:  # a mix, not one picture or the other
                assert relative_error < 0.8, (join.frame, number, relative_error)
