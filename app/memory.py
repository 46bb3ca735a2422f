"""How much memory a render needs, how much is free, and how much an engine uses.

psutil only, no Qt: the render queue asks before starting a job and while it runs.
"""

from __future__ import annotations

import logging

import psutil

from engine import protocol

log = logging.getLogger(__name__)

MB = 1024 * 1024
# benchmarks/memory.py measured ~260 MB peak for a 1080p final render and ~455 MB
# for the music-analysis child (it runs before the render, not beside it). The
# estimate keeps a margin over the render's peak: a 1080p final render comes to
# about 350 MB and a 360p preview to about 200 MB.
ENGINE_BASE_MB = 180
MB_PER_MEGAPIXEL = 82
# The engine's short side when the job names no size (engine.plan.output_size).
SHORT_SIDE_PIXELS = {"preview": 360, "final": 1080}
DEFAULT_LIMIT_MB = 1500


def output_pixels(spec: protocol.JobSpec) -> int:
    """Pixels in one output frame, as the engine will size it."""
    if spec.size is not None:
        return spec.size[0] * spec.size[1]
    short = SHORT_SIDE_PIXELS.get(spec.quality, SHORT_SIDE_PIXELS["final"])
    long = short * 16 // 9
    return short * (short if spec.aspect == "1:1" else long)


def estimate_job_mb(spec: protocol.JobSpec) -> int:
    """Peak resident memory a render of this job is expected to need, in MB."""
    return round(ENGINE_BASE_MB + output_pixels(spec) / 1e6 * MB_PER_MEGAPIXEL)


def available_mb() -> float:
    """Memory the system can give a new process without swapping, in MB."""
    return psutil.virtual_memory().available / MB


def process_tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its children, in MB; 0 once gone."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / MB


def oom_kills() -> int | None:
    """How many processes the kernel's out-of-memory killer has stopped since boot
    (Linux 4.13 and later), or None where the system does not say."""
    try:
        with open("/proc/vmstat", encoding="ascii") as vmstat:
            for line in vmstat:
                name, _, value = line.partition(" ")
                if name == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return None
