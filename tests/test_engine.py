"""The engine end to end through its subprocess: cuts on the beat, frame-exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest

from engine.cancel import (
    allow_cancel,
    install_cancel_handlers,
    on_cancel_signal,
    too_late_to_cancel,
)
from engine.errors import CancelledError
from engine.protocol import EXIT_CODES, ErrorCode, EventKind, parse_event
from tests.audio_media import write_click_track
from tests.engine_runs import read_until, rendering_past, run_engine, start_engine
from tests.input_media import write_empty, write_text_as_video
from tests.media import (
    ClipTruth,
    decode_rgb_frames,
    is_upright,
    read_marker,
    write_marker_clip,
)

FPS = 30


@pytest.fixture(scope="module")
def clips(media_dir: Path) -> dict[str, ClipTruth]:
    """Sources at 25 and 30 fps, one variable-rate, one starting late."""
    folder = media_dir / "engine clips"
    folder.mkdir(exist_ok=True)
    specs: dict[str, dict[str, Any]] = {
        "a25.mp4": {"frames": 150, "fps": 25, "cuts": [60, 110]},
        "b30.mp4": {"frames": 180, "fps": 30, "cuts": [90]},
        "vfr.mp4": {"frames": 150, "fps": 30, "vfr": True, "cuts": [70]},
        "late.mov": {"frames": 125, "fps": 25, "start_sec": 1.5},
    }
    return {
        name: write_marker_clip(folder / name, **spec) for name, spec in specs.items()
    }


def cut_frames(timeline: otio.schema.Timeline) -> list[int]:
    """Record frames where each clip after the first starts."""
    track = timeline.video_tracks()[0]
    starts = []
    for clip in track.find_clips():
        starts.append(
            round(track.range_of_child(clip).start_time.rescaled_to(FPS).value)
        )
    return starts[1:]


def expected_index(truth: ClipTruth, time_sec: float) -> int:
    """The source frame the render shows at media time time_sec (from frame 0)."""
    target = truth.times_sec[0] + time_sec
    # The nearest frame, the later on a tie (timestamps are rounded to 1 us).
    return min(
        range(len(truth.times_sec)),
        key=lambda i: (round(abs(truth.times_sec[i] - target), 6), -i),
    )


@pytest.mark.parametrize("bpm", [62, 128, 174])
def test_cuts_land_on_beats_and_show_the_named_frames(
    bpm: int, clips: dict[str, ClipTruth], tmp_path: Path
) -> None:
    song = tmp_path / f"click {bpm}.wav"
    clicks = write_click_track(song, bpm=bpm, duration_sec=9.0, bed=True)
    out = tmp_path / "montage.mp4"
    job = {
        "clips": [str(truth.path) for truth in clips.values()],
        "music": str(song),
        "output": str(out),
        "style": "action",
        "quality": "preview",
        "fps": FPS,
        "seed": 3,
    }
    status, events, stderr = run_engine(job, tmp_path)
    assert status == 0, stderr
    assert events[0].kind is EventKind.STARTED
    assert events[-1].kind is EventKind.FINISHED

    timeline = otio.adapters.read_from_file(str(out.with_suffix(".otio")))
    start_sec = timeline.metadata["montage_ai"]["music"]["start_sec"]
    cuts = cut_frames(timeline)
    assert len(cuts) >= 3
    for frame in cuts:
        nearest = min(abs(frame / FPS - (click - start_sec)) for click in clicks)
        assert nearest <= 1 / FPS, f"cut at frame {frame} is {nearest:.3f} s off"

    by_path = {str(truth.path): truth for truth in clips.values()}
    markers = [read_marker(rgb) for _, rgb in decode_rgb_frames(out)]
    track = timeline.video_tracks()[0]
    for clip in track.find_clips():
        truth = by_path[clip.media_reference.target_url]
        record_start = round(
            track.range_of_child(clip).start_time.rescaled_to(FPS).value
        )
        in_sec = clip.metadata["montage_ai"]["in_sec"]
        length = round(clip.source_range.duration.rescaled_to(FPS).value)
        for offset in (0, length // 2):
            want = expected_index(truth, in_sec + offset / FPS)
            got = markers[record_start + offset]
            assert got == want, f"{clip.name} frame +{offset}: shows {got}, want {want}"

    # The cuts in the picture are where the timeline says.
    jumps = [
        n for n in range(1, len(markers)) if n in cuts or markers[n] != markers[n - 1]
    ]
    assert set(cuts) <= set(jumps)


def test_unusable_files_are_named_and_the_rest_are_used(
    clips: dict[str, ClipTruth], tmp_path: Path
) -> None:
    write_empty(tmp_path / "empty.mp4")
    write_text_as_video(tmp_path / "notes.mp4")
    song = tmp_path / "song.wav"
    write_click_track(song, bpm=120, duration_sec=5.0)
    job = {
        "clips": [
            str(clips["b30.mp4"].path),
            str(tmp_path / "empty.mp4"),
            str(tmp_path / "notes.mp4"),
        ],
        "music": str(song),
        "output": str(tmp_path / "out.mp4"),
        "quality": "preview",
        "seed": 1,
    }
    status, events, stderr = run_engine(job, tmp_path)
    assert status == 0, stderr
    warnings = [e.data for e in events if e.kind is EventKind.WARNING]
    named = {Path(w["path"]).name: w["message"] for w in warnings}
    assert set(named) == {"empty.mp4", "notes.mp4"}
    assert "empty" in named["empty.mp4"]
    assert "not a video" in named["notes.mp4"]
    assert (tmp_path / "out.mp4").stat().st_size > 0


def test_no_usable_clip_fails_with_its_code(tmp_path: Path) -> None:
    write_empty(tmp_path / "empty.mp4")
    song = tmp_path / "song.wav"
    write_click_track(song, bpm=120, duration_sec=4.0)
    job = {
        "clips": [str(tmp_path / "empty.mp4")],
        "music": str(song),
        "output": str(tmp_path / "out.mp4"),
    }
    status, events, _ = run_engine(job, tmp_path)
    assert status == EXIT_CODES[ErrorCode.NO_USABLE_CLIPS]
    assert events[-1].kind is EventKind.FAILED
    assert events[-1].data["code"] == "no_usable_clips"
    assert not (tmp_path / "out.mp4").exists()


def test_sigterm_cancels_and_leaves_nothing(
    clips: dict[str, ClipTruth], tmp_path: Path
) -> None:
    song = tmp_path / "song.wav"
    write_click_track(song, bpm=120, duration_sec=60.0)
    out = tmp_path / "out.mp4"
    job = {"clips": [str(clips["a25.mp4"].path)], "music": str(song),
           "output": str(out), "quality": "final", "seed": 1,
           "export": ["edl", "csv"]}  # fmt: skip
    process = start_engine(job, tmp_path)
    read_until(process, rendering_past(0.02))
    assert process.stdout is not None
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    rest = process.stdout.read()
    status = process.wait(timeout=10)
    assert time.monotonic() - sent < 2.0
    assert status == EXIT_CODES[ErrorCode.CANCELLED]
    assert parse_event(rest.splitlines()[-1]).data["code"] == "cancelled"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json", "song.wav"]


def test_a_cancel_is_refused_only_between_too_late_and_the_next_job() -> None:
    allow_cancel()
    with pytest.raises(CancelledError):
        on_cancel_signal(signal.SIGTERM, None)
    too_late_to_cancel()
    on_cancel_signal(signal.SIGTERM, None)  # logged, nothing raised
    allow_cancel()
    with pytest.raises(CancelledError):
        on_cancel_signal(signal.SIGINT, None)


def test_once_too_late_the_system_ignores_a_cancel_until_the_next_job() -> None:
    """Python puts its handlers back to the default as it exits: a SIGTERM then
    would kill an engine that has finished, so the signal is ignored outright."""
    saved = {
        signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        install_cancel_handlers()
        too_late_to_cancel()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        allow_cancel()
        assert signal.getsignal(signal.SIGTERM) is on_cancel_signal
    finally:
        allow_cancel()
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_a_cancel_after_the_render_lets_the_files_go_into_place(
    clips: dict[str, ClipTruth], tmp_path: Path
) -> None:
    """Once the video is encoded, Cancel is too late: the job finishes with every
    file, rather than report "cancelled" beside some of them."""
    song = tmp_path / "song.wav"
    write_click_track(song, bpm=120, duration_sec=8.0)
    out = tmp_path / "out.mp4"
    job = {"clips": [str(clips["b30.mp4"].path)], "music": str(song),
           "output": str(out), "quality": "preview", "seed": 1,
           "duration_sec": 4, "export": ["edl", "csv"]}  # fmt: skip
    process = start_engine(job, tmp_path)
    read_until(
        process,
        lambda event: event.kind is EventKind.STAGE and event.data["stage"] == "export",
    )
    process.send_signal(signal.SIGTERM)
    assert process.stdout is not None
    rest = process.stdout.read()
    assert process.wait(timeout=30) == 0
    assert parse_event(rest.splitlines()[-1]).kind is EventKind.FINISHED
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "job.json", "out.csv", "out.edl", "out.mp4", "out.otio", "out.reels.csv",
        "song.wav",
    ]  # fmt: skip


def test_phone_clip_plays_upright(media_dir: Path, tmp_path: Path) -> None:
    phone = write_marker_clip(
        tmp_path / "phone.mp4", frames=60, fps=30, size=(320, 180), rotation=90
    )
    song = tmp_path / "song.wav"
    write_click_track(song, bpm=120, duration_sec=2.0)
    out = tmp_path / "vertical.mp4"
    job = {"clips": [str(phone.path)], "music": str(song), "output": str(out),
           "aspect": "9:16", "quality": "preview", "seed": 1}  # fmt: skip
    status, _, stderr = run_engine(job, tmp_path)
    assert status == 0, stderr
    frames = list(decode_rgb_frames(out))
    assert frames[0][1].shape[:2] == (640, 360)
    assert all(is_upright(rgb) for _, rgb in frames[::10])
    assert read_marker(frames[0][1]) is not None


def test_engine_stops_when_its_app_dies(
    clips: dict[str, ClipTruth], tmp_path: Path
) -> None:
    """An app killed mid-render takes its engine with it, leaving nothing behind."""
    song = tmp_path / "song.wav"
    write_click_track(song, bpm=120, duration_sec=60.0)
    out = tmp_path / "out.mp4"
    job = {"clips": [str(clips["a25.mp4"].path)], "music": str(song),
           "output": str(out), "quality": "final", "seed": 1}  # fmt: skip
    (tmp_path / "job.json").write_text(json.dumps(job), encoding="utf-8")
    app = subprocess.Popen(
        [sys.executable, "-c", APP_STAND_IN, str(tmp_path / "job.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert app.stdout is not None
    engine_pid = int(app.stdout.readline())
    for line in app.stdout:
        event = parse_event(line)
        rendering = event.kind is EventKind.PROGRESS and event.data["stage"] == "render"
        if rendering and event.data["fraction"] > 0.02:
            break
    app.kill()
    app.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(engine_pid):
        time.sleep(0.05)
    assert not _alive(engine_pid)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json", "song.wav"]


# Stands in for the app: starts the engine, says its pid, then waits to be killed.
APP_STAND_IN = """
import subprocess, sys, time
engine = subprocess.Popen([sys.executable, "-m", "engine", sys.argv[1]])
print(engine.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose: its parent (init) will reap it.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"
