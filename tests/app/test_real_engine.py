"""Contract: EngineProcess drives the real engine subprocess to a finished render."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import pytest

from app.engine_process import EngineProcess
from engine import protocol
from tests.audio_media import write_click_track
from tests.media import write_marker_clip

REAL_MEDIA_ENV = "MONTAGE_AI_REAL_MEDIA"
REAL_SONG = "Sean Hawk - In Rome.ogg"


def render(qtbot, spec: protocol.JobSpec, job_dir: Path, timeout_ms: int):
    """Run spec through the real engine; return the signals it sent, by name."""
    engine = EngineProcess()
    received: dict[str, list[tuple]] = {}
    for name in ("stage_changed", "progress_changed", "warning_raised"):
        getattr(engine, name).connect(
            lambda *args, name=name: received.setdefault(name, []).append(args)
        )
    engine.render_finished.connect(lambda *args: received.setdefault("end", [args]))
    engine.render_failed.connect(lambda *args: received.setdefault("end", [args]))
    try:
        engine.start(spec, job_dir)
        qtbot.waitUntil(lambda: "end" in received, timeout=timeout_ms)
    finally:
        engine.shutdown()
    return received


@pytest.mark.slow
def test_real_engine_renders_generated_media(qtbot, tmp_path):
    clip = write_marker_clip(tmp_path / "clip.mp4", frames=75, cuts=(25, 50)).path
    song = tmp_path / "clicks.wav"
    write_click_track(song, bpm=120, duration_sec=6.0)
    spec = protocol.JobSpec(
        clips=[str(clip)],
        music=str(song),
        output=str(tmp_path / "out" / "montage.mp4"),
        quality="preview",
        duration_sec=4.0,
        seed=1,
    )
    (tmp_path / "out").mkdir()

    # A cold numba cache costs up to a minute on the first engine run.
    received = render(qtbot, spec, tmp_path / "job", timeout_ms=180_000)

    [(outputs, summary)] = received["end"]
    assert isinstance(outputs, dict), f"render failed: {received['end']}"
    assert Path(outputs["video"]).stat().st_size > 0
    assert Path(outputs["otio"]).is_file()
    assert summary["seed"] == 1
    stages = [stage for stage, _ in received["stage_changed"]]
    assert stages == list(protocol.STAGES)
    assert received["progress_changed"][-1][0] == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.real_media
def test_real_engine_renders_real_media(qtbot, tmp_path):
    media = os.environ.get(REAL_MEDIA_ENV, "")
    if not (media and (Path(media) / "music" / REAL_SONG).is_file()):
        pytest.skip(
            f"real media not fetched (set {REAL_MEDIA_ENV} to a folder with video/ and music/)"
        )
    spec = protocol.JobSpec(
        clips=[str(Path(media) / "video")],
        music=str(Path(media) / "music" / REAL_SONG),
        output=str(tmp_path / "montage.mp4"),
        quality="preview",
        duration_sec=10.0,
        seed=7,
    )

    received = render(qtbot, spec, tmp_path / "job", timeout_ms=600_000)

    [(outputs, summary)] = received["end"]
    assert isinstance(outputs, dict), f"render failed: {received['end']}"
    assert Path(outputs["video"]).stat().st_size > 0
    assert summary["duration_sec"] == pytest.approx(10.0, abs=0.1)
