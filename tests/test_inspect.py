"""`python -m engine.inspect`: what the window learns about dropped media."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av

from engine.protocol import EventKind, parse_event
from tests.audio_media import write_click_track
from tests.input_media import write_text_as_video
from tests.media import write_marker_clip


def inspect(*args: str) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "engine.inspect", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [parse_event(line).data for line in result.stdout.splitlines()]


def test_clips_get_facts_and_an_upright_thumbnail(tmp_path: Path) -> None:
    write_marker_clip(tmp_path / "phone.mp4", frames=30, size=(320, 180), rotation=90)
    write_text_as_video(tmp_path / "notes.mp4")
    infos = {Path(info["path"]).name: info for info in inspect("clips", str(tmp_path))}
    phone, notes = infos["phone.mp4"], infos["notes.mp4"]
    assert phone["ok"] and (phone["width"], phone["height"]) == (180, 320)
    assert abs(phone["duration_sec"] - 30 / 25) < 0.05
    with av.open(phone["thumbnail"]) as picture:
        frame = next(picture.decode(video=0))
    assert frame.height == 90 and frame.width < frame.height
    assert not notes["ok"] and "notes.mp4" in notes["message"]


def test_music_gets_beats_and_a_waveform(tmp_path: Path) -> None:
    clicks = write_click_track(tmp_path / "song.wav", bpm=120, duration_sec=6.0)
    [info] = inspect("music", str(tmp_path / "song.wav"))
    assert info["ok"]
    assert len(info["beats_sec"]) >= len(clicks) - 1
    assert set(info["downbeats_sec"]) <= set(info["beats_sec"])
    assert 100 <= len(info["waveform"]) <= 1200
    assert max(info["waveform"]) == 1.0


def test_events_parse_as_their_kind(tmp_path: Path) -> None:
    write_text_as_video(tmp_path / "x.mp4")
    line = subprocess.run(
        [sys.executable, "-m", "engine.inspect", "clips", str(tmp_path / "x.mp4")],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert parse_event(line).kind is EventKind.CLIP_INFO
