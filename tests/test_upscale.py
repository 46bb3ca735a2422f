"""Upscaling: Real-ESRGAN on the CPU gives a sharper frame than bicubic scaling,
upscales and caches only the frames shown, and falls back to Lanczos with a
warning when the library cannot load; measured on a tiny generated clip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import opentimelineio as otio
import pytest

from engine.cache import content_hash
from engine.paths import cache_dir
from engine.placements import read_placements
from engine.protocol import EventKind, JobSpec, JobSpecError, parse_event
from engine.timeline import META, timeline_rate
from engine.upscale import LIBRARY_ENV, upscale_factor
from tests.audio_media import write_click_track
from tests.engine_runs import run_engine
from tests.subject_media import SubjectTruth, write_detail_clip

OUTPUT_SIZE = (320, 180)


@pytest.fixture(scope="module")
def detail(media_dir: Path) -> SubjectTruth:
    """160 x 90, a quarter of the output's area: x2 for auto."""
    return write_detail_clip(media_dir / "small detail.mp4", seconds=1.0)


@pytest.fixture(scope="module")
def song(media_dir: Path) -> Path:
    path = media_dir / "upscale song.wav"
    write_click_track(path, bpm=120, duration_sec=2.0)
    return path


def render(
    clip: Path, song: Path, folder: Path, name: str, **options: Any
) -> tuple[Path, list[Any]]:
    output = folder / f"{name}.mp4"
    job = {
        "clips": [str(clip)],
        "music": str(song),
        "output": str(output),
        "size": list(OUTPUT_SIZE),
        "duration_sec": 1.0,
        "seed": 2,
        **options,
    }
    status, events, stderr = run_engine(job, folder)
    assert status == 0, stderr
    return output, events


def sharpness(path: Path) -> float:
    """Variance of the Laplacian of the luma, median over the frames: a
    no-reference measure of fine detail."""
    values = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            luma = frame.to_ndarray(format="gray").astype(np.float64)
            values.append(cv2.Laplacian(luma, cv2.CV_64F).var())
    return float(np.median(values))


def source_frames_shown(otio_path: Path, fps: int) -> int:
    """How many distinct source frames the render shows."""
    timeline = otio.adapters.read_from_file(str(otio_path))
    rate = timeline_rate(timeline)
    placements, _ = read_placements(timeline)
    shown = {
        round(placement.source_sec(frame, rate) * fps)
        for placement in placements
        for frame in range(placement.record_start, placement.record_end)
    }
    return len(shown)


def test_real_esrgan_is_sharper_than_bicubic_and_caches_the_frames_shown(
    detail: SubjectTruth, song: Path, tmp_path: Path
) -> None:
    upscaled, events = render(detail.path, song, tmp_path, "auto", upscale="auto")
    plain, _ = render(detail.path, song, tmp_path, "off")

    warnings = [e.data for e in events if e.kind is EventKind.WARNING]
    assert not [w for w in warnings if w["code"] == "upscaler_unavailable"]
    # Measured: about 3.3 times the Laplacian variance of FFmpeg's bicubic.
    assert sharpness(upscaled) > 2.0 * sharpness(plain)
    timeline = otio.adapters.read_from_file(str(upscaled.with_suffix(".otio")))
    assert timeline.metadata[META]["upscale"]["method"].startswith("realesrgan")
    content = content_hash(detail.path)[:32]
    cached = list(cache_dir("upscaled").glob(f"{content}-*-x2-*.png"))
    assert len(cached) == source_frames_shown(upscaled.with_suffix(".otio"), 25)


def test_without_the_library_a_warning_and_lanczos_scaling(
    detail: SubjectTruth, song: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module that does not exist: the import fails for real, as it does without
    # libvulkan1 (the error then names the wrapper module).
    monkeypatch.setenv(LIBRARY_ENV, "realesrgan_missing_for_the_test")
    upscaled, events = render(detail.path, song, tmp_path, "lanczos", upscale="on")
    plain, _ = render(detail.path, song, tmp_path, "plain")

    warnings = [e.data for e in events if e.kind is EventKind.WARNING]
    unavailable = [w for w in warnings if w["code"] == "upscaler_unavailable"]
    assert len(unavailable) == 1
    assert "libvulkan1" in unavailable[0]["message"]
    assert "Lanczos" in unavailable[0]["message"]
    assert events[-1].kind is EventKind.FINISHED
    with av.open(str(upscaled)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == OUTPUT_SIZE
    # Lanczos is a little sharper than bicubic, nowhere near Real-ESRGAN.
    assert sharpness(plain) < sharpness(upscaled) < 1.6 * sharpness(plain)


def test_the_estimate_comes_from_the_engine_before_the_job(
    detail: SubjectTruth, media_dir: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engine.inspect", "upscale", "auto", "16:9",
         "preview", "10", "30", str(detail.path)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    event = parse_event(result.stdout.splitlines()[-1])
    assert event.kind is EventKind.UPSCALE_INFO
    # 10 s at 30 fps from a 25 fps clip: 250 source frames.
    assert event.data["frames"] == 250
    assert event.data["seconds"] > 0
    assert "250 frames" in event.data["message"]


def test_auto_upscales_only_sources_smaller_than_the_output() -> None:
    assert upscale_factor((160, 90), (320, 180), "crop", "auto") == 2
    assert upscale_factor((640, 360), (1920, 1080), "crop", "auto") == 3
    assert upscale_factor((320, 180), (1920, 1080), "crop", "auto") == 4
    assert upscale_factor((1920, 1080), (1920, 1080), "crop", "auto") == 0
    assert upscale_factor((1920, 1080), (1280, 720), "crop", "on") == 2
    assert upscale_factor((160, 90), (320, 180), "crop", "off") == 0


def test_upscale_is_stored_in_the_job() -> None:
    spec = JobSpec(clips=["a.mp4"], music="s.wav", output="o.mp4", upscale="auto")
    assert json.loads(spec.to_json())["upscale"] == "auto"
    assert JobSpec.from_json(spec.to_json()).upscale == "auto"
    with pytest.raises(JobSpecError, match="upscale"):
        JobSpec(clips=["a.mp4"], music="s.wav", output="o.mp4", upscale="always")
