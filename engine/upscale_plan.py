"""What upscaling a job costs and which clips get it: the plan stored in the
timeline for the renderer, the estimate the window shows before a job starts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import opentimelineio as otio

from engine.follow import display_size
from engine.probe import MediaInfo
from engine.timeline import META, timeline_rate
from engine.upscale import (
    CALIBRATION_SIZE,
    DEFAULT_SEC_PER_MEGAPIXEL,
    UpscalerUnavailableError,
    choose_device,
    upscale_factor,
    upscaler_for,
)

log = logging.getLogger(__name__)

# Real-ESRGAN taking longer than this in all is announced with a warning.
SLOW_SEC = 60.0


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
    estimate_sec = round(megapixels * sec_per_megapixel(method), 1)
    plan = {"mode": mode, "method": method, "frames": frames}
    plan["estimate_sec"] = estimate_sec
    for clip, scale in marked:
        clip.metadata[META]["upscale"] = {"scale": scale, "method": method}
    meta["upscale"] = plan
    log.info("Upscaling %d clips: %s", len(marked), plan)
    return plan


def _working_method(warn: Callable[[str], None]) -> str:
    try:
        device = choose_device()
        upscaler_for(device).network(2)
    except UpscalerUnavailableError as error:
        message = f"{error} The clips are enlarged with Lanczos scaling instead."
        log.warning(message)
        warn(message)
        return "lanczos"
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
    if plan is None or plan["method"] == "lanczos" or plan["estimate_sec"] < SLOW_SEC:
        return None
    frames = int(plan["frames"])
    return (
        f"Upscaling {frames} frames with {describe_method(plan['method'])} takes "
        f"about {format_duration(plan['estimate_sec'])}; the frames are cached, so "
        "a render of the same shots again is quick. Choose upscale 'off' for a "
        "faster render."
    )


_measured: dict[str, float] = {}


def sec_per_megapixel(method: str) -> float:
    """Seconds per megapixel of source: a calibration of a fraction of a second,
    once per process so that it sees how busy the machine is now; the table when
    the library cannot run."""
    if method == "lanczos":
        return DEFAULT_SEC_PER_MEGAPIXEL["lanczos"]
    device = method.removeprefix("realesrgan-")
    if device in _measured:
        return _measured[device]
    try:
        upscaler = upscaler_for(device)
        width, height = CALIBRATION_SIZE
        picture = np.random.default_rng(0).integers(
            0, 255, (height, width, 3), np.uint8
        )
        upscaler.upscale_bgr(picture[:32, :32], 2)  # loads the network first
        started = time.monotonic()
        upscaler.upscale_bgr(picture, 2)
        elapsed_sec = time.monotonic() - started
    except UpscalerUnavailableError as error:
        log.warning("No upscaler calibration: %s", error)
        return DEFAULT_SEC_PER_MEGAPIXEL[device]
    _measured[device] = elapsed_sec / (width * height / 1e6)
    return _measured[device]


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


def estimate_upscale(
    infos: list[MediaInfo],
    mode: str,
    size: tuple[int, int],
    fit: str,
    total_frames: int,
    fps: float,
) -> dict[str, Any]:
    """What upscaling a montage of total_frames from these clips would cost, before
    it is planned: the shots are spread over the clips, so the share of frames from
    clips to upscale is taken as their share of the clips.

    Returns the upscale_info event's data: ok, message, frames, seconds, method.
    """
    videos = [info for info in infos if not info.still]
    small = [i for i in videos if upscale_factor(i.display_size, size, fit, mode)]
    if not small:
        return {"ok": True, "frames": 0, "seconds": 0.0, "method": "none",
                "message": _nothing_to_upscale(mode, size)}  # fmt: skip
    method = _working_method(lambda message: None)
    share = len(small) / len(videos)
    rates = [min(1.0, float(info.fps_fraction) / fps) for info in small]
    frames = round(total_frames * share * sum(rates) / len(rates))
    megapixels = sum(info.width * info.height for info in small) / len(small) / 1e6
    sec_per_frame = megapixels * sec_per_megapixel(method)
    message = estimate_text(frames, sec_per_frame, method)
    if method == "lanczos":
        message += ": Real-ESRGAN cannot load on this computer"
    return {"ok": True, "frames": frames, "seconds": round(frames * sec_per_frame, 1),
            "method": method, "message": f"{len(small)} of {len(videos)} clips, "
            f"{message}"}  # fmt: skip


def _nothing_to_upscale(mode: str, size: tuple[int, int]) -> str:
    if mode == "off":
        return "Upscaling is off."
    return f"No clip is smaller than the {size[0]}x{size[1]} output: none is upscaled."
