"""Peak memory of the engine for a 1080p render from a short and a long source.

Usage: python benchmarks/memory.py [--long-minutes 10] [--workdir DIR]

Generates a 10-second and a long 1080p source and a song, renders a 20-second
1080p montage from each in its own engine process, and prints each process's peak
resident memory side by side. Memory must stay flat: the target is the same figure
for both, under 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SOURCE_SIZE = (1920, 1080)
SOURCE_FPS = 10
TARGET_MB = 500


def write_source(path: Path, seconds: float) -> None:
    """A 1080p H.264 clip with moving content and a hard scene change every 20 s."""
    width, height = SOURCE_SIZE
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=SOURCE_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30", "g": "50"}
        for index in range(int(seconds * SOURCE_FPS)):
            scene = index // (20 * SOURCE_FPS)
            shift = (index * 7) % 255
            rgb = np.empty((height, width, 3), dtype=np.uint8)
            rgb[..., 0] = (x + shift + scene * 90) % 255
            rgb[..., 1] = (y + scene * 50) % 255
            rgb[..., 2] = (x + y + scene * 130) % 255
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, SOURCE_FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_song(path: Path, seconds: float, bpm: float = 120.0) -> None:
    rate = 44100
    samples = np.zeros(int(seconds * rate), dtype=np.float32)
    click = np.hanning(882)[441:].astype(np.float32) * np.sin(np.arange(441) * 0.3)
    for start in np.arange(0.5, seconds - 0.1, 60.0 / bpm):
        offset = int(start * rate)
        samples[offset : offset + click.size] += click * 0.8
    with wave.open(str(path), "wb") as stream:
        stream.setnchannels(1)
        stream.setsampwidth(2)
        stream.setframerate(rate)
        stream.writeframes((samples * 32767).astype("<i2").tobytes())


def child_peak_mb(command: list[str], log_path: Path, env: dict[str, str]) -> float:
    """Run a command; return its peak resident memory in MB."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        # wait4 gives this child's own peak, unlike RUSAGE_CHILDREN's running maximum.
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{command[2]} failed: see {log_path}")
    return usage.ru_maxrss / 1024


def render_peak_mb(
    workdir: Path, source: Path, song: Path, name: str
) -> tuple[float, float]:
    """Run one engine process; return (peak RSS in MB, wall seconds)."""
    job = {
        "clips": [str(source)],
        "music": str(song),
        "output": str(workdir / f"{name}-montage.mp4"),
        "duration_sec": 20,
        "quality": "final",
        "seed": 1,
    }
    job_path = workdir / f"{name}.json"
    job_path.write_text(json.dumps(job))
    started = time.monotonic()
    peak_mb = child_peak_mb(
        [sys.executable, "-m", "engine", str(job_path)],
        workdir / f"{name}.log",
        bench_env(workdir),
    )
    return peak_mb, time.monotonic() - started


def bench_env(workdir: Path) -> dict[str, str]:
    return {**os.environ, "MONTAGE_AI_CACHE_DIR": str(workdir / "cache")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="montage-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    song = workdir / "song.wav"
    write_song(song, 40)
    # The song's analysis runs first, in its own process, so that both renders find
    # it cached and differ only in their source.
    started = time.monotonic()
    music_mb = child_peak_mb(
        [sys.executable, "-m", "engine.cli", "analyze", str(song)],
        workdir / "music.log",
        bench_env(workdir),
    )
    rows = [("music", 40.0, music_mb, time.monotonic() - started)]
    for name, seconds in (("long", args.long_minutes * 60), ("short", 10.0)):
        source = workdir / f"{name}.mp4"
        if not source.exists():
            print(f"generating {name} source ({seconds:.0f} s of 1080p)...", flush=True)
            write_source(source, seconds)
        peak_mb, wall = render_peak_mb(workdir, source, song, name)
        rows.append((name, seconds, peak_mb, wall))
    print(f"\n{'process':<8}{'length':>10}{'peak RSS':>12}{'wall':>9}")
    for name, seconds, peak_mb, wall in rows:
        print(f"{name:<8}{seconds:>9.0f}s{peak_mb:>9.0f} MB{wall:>8.1f}s")
    long_mb, short_mb = rows[1][2], rows[2][2]
    print(
        f"\nlong / short: {long_mb / short_mb:.2f}   target: flat, under {TARGET_MB} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
