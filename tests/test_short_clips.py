"""Clips shorter than the shots the song asks for: never played past their end,
and named when they are left out or slowed to fill the time to a beat."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio

from engine.protocol import EventKind
from engine.timewarp import clip_speed
from tests.audio_media import write_click_track
from tests.engine_runs import run_engine
from tests.media import write_marker_clip


def test_short_clips_are_slowed_or_named_never_run_past_their_end(
    tmp_path: Path,
) -> None:
    short = write_marker_clip(tmp_path / "short.mp4", frames=10, fps=25)
    single = write_marker_clip(tmp_path / "one frame.mp4", frames=1, fps=25)
    song = tmp_path / "song.wav"
    write_click_track(song, bpm=100, duration_sec=8.0)
    output = tmp_path / "out" / "montage.mp4"
    job = {"clips": [str(short.path), str(single.path)], "music": str(song),
           "output": str(output), "quality": "preview", "size": [160, 90],
           "seed": 1, "style": "dynamic"}  # fmt: skip
    status, events, stderr = run_engine(job, tmp_path)
    assert status == 0, stderr[-2000:]

    warnings = [
        e.data["message"]
        for e in events
        if e.kind is EventKind.WARNING and e.data["code"] == "clip_too_short"
    ]
    assert any(m.startswith("one frame.mp4 lasts 0.04 s") for m in warnings)
    assert any(m.startswith("short.mp4: no clip is as long") for m in warnings)
    timeline = otio.adapters.read_from_file(str(output.with_suffix(".otio")))
    clips = list(timeline.video_tracks()[0].find_clips())
    assert {Path(c.media_reference.target_url).name for c in clips} == {"short.mp4"}
    for clip in clips:
        played = clip.source_range.duration.to_seconds() * clip_speed(clip)
        end_sec = clip.source_range.start_time.to_seconds() + played
        assert end_sec <= 0.4 + 1e-6, f"{clip.name} plays on to {end_sec:.3f} s"
