"""Test media and measures for the looks: a shaking clip, a noisy one, a .cube,
and the jitter, noise and blur that show what stabilize, denoise and whip do."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SIZE = (320, 180)
FPS = 30


def write_frames(path: Path, pictures: list[np.ndarray], fps: int = FPS) -> None:
    """Encode RGB pictures almost losslessly (CRF 4), so noise survives."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = pictures[0].shape[1], pictures[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "4", "preset": "ultrafast"}
        for index, rgb in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def texture(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth random blobs, grey 40..215: edges everywhere for motion search."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 215, (height // 8 + 2, width // 8 + 2))
    rows = np.linspace(0, coarse.shape[0] - 1.001, height)
    columns = np.linspace(0, coarse.shape[1] - 1.001, width)
    top, left = rows.astype(int), columns.astype(int)
    down, right = (rows - top)[:, None], (columns - left)[None, :]
    picture = (
        coarse[top][:, left] * (1 - down) * (1 - right)
        + coarse[top + 1][:, left] * down * (1 - right)
        + coarse[top][:, left + 1] * (1 - down) * right
        + coarse[top + 1][:, left + 1] * down * right
    )
    return np.repeat(picture[..., None], 3, axis=-1).astype(np.uint8)


def write_shaking_clip(path: Path, frames: int, shake_px: int = 6) -> None:
    """A still scene seen by a shaking camera: each frame moved up to shake_px."""
    width, height = SIZE
    margin = 2 * shake_px
    scene = texture(width + 2 * margin, height + 2 * margin, seed=5)
    rng = np.random.default_rng(9)
    pictures = []
    for _ in range(frames):
        dx, dy = rng.integers(-shake_px, shake_px + 1, 2)
        top, left = margin + dy, margin + dx
        pictures.append(
            np.ascontiguousarray(scene[top : top + height, left : left + width])
        )
    write_frames(path, pictures)


def write_noisy_clip(path: Path, frames: int, noise: float = 14.0) -> None:
    """Flat mid grey with fresh Gaussian noise in every frame."""
    width, height = SIZE
    rng = np.random.default_rng(3)
    pictures = []
    for _ in range(frames):
        grain = rng.normal(0, noise, (height, width, 1))
        pictures.append(
            np.clip(128 + grain, 0, 255).repeat(3, axis=-1).astype(np.uint8)
        )
    write_frames(path, pictures)


def write_cube(
    path: Path,
    transform: Callable[[float, float, float], tuple[float, float, float]],
    points: int = 5,
) -> Path:
    """A .cube of `points` a side for an (r, g, b) -> (r, g, b) function."""
    steps = np.linspace(0, 1, points)
    lines = [f"LUT_3D_SIZE {points}"]
    for blue in steps:
        for green in steps:
            for red in steps:
                lines.append(
                    "{:.5f} {:.5f} {:.5f}".format(*transform(red, green, blue))
                )
    path.write_text("# made by a test\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722]))


def shift_px(first: np.ndarray, second: np.ndarray) -> float:
    """How far the picture moved between two frames (phase correlation), pixels."""
    a, b = luma(first), luma(second)
    a, b = a - a.mean(), b - b.mean()
    spectrum = np.fft.fft2(a) * np.conj(np.fft.fft2(b))
    correlation = np.fft.ifft2(spectrum / (np.abs(spectrum) + 1e-9)).real
    dy, dx = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
    height, width = correlation.shape
    dy = dy - height if dy > height // 2 else dy
    dx = dx - width if dx > width // 2 else dx
    return float(np.hypot(dx, dy))


def noise_level(rgb: np.ndarray) -> float:
    """Standard deviation of luma inside the frame (a flat picture's noise)."""
    centre = luma(rgb)[20:-20, 20:-20]
    return float(centre.std())


def horizontal_detail(rgb: np.ndarray) -> float:
    """Mean horizontal gradient of luma: falls when a picture is blurred sideways."""
    return float(np.abs(np.diff(luma(rgb), axis=1)).mean())
