"""The whip pan: the outgoing shot slides out, the incoming one slides in, blurred
along the motion as a fast camera pan blurs, fastest and blurriest at the cut.

The cut stays on its beat: from the cut's frame on, the incoming shot fills more
than half the picture.
"""

from __future__ import annotations

import math

import av
import numpy as np

from engine.stills import yuv420p_frame, yuv420p_planes

# The blur is the whole distance moved in a frame (a 360-degree shutter): a
# whip pan smears the picture, at its fastest, beyond recognition.
SHUTTER_SHARE = 1.0


def whip_frame(
    outgoing: av.VideoFrame, incoming: av.VideoFrame, progress: float, frames: int
) -> av.VideoFrame:
    """One frame of a whip pan `frames` long, at progress 0..1 (the cut at 0.5)."""
    progress = min(1.0, max(0.0, progress))
    # Eased: the slide starts and ends at rest, its speed peaking at the cut.
    offset = (1 - math.cos(math.pi * progress)) / 2
    speed = math.pi / 2 * math.sin(math.pi * progress) / max(1, frames)
    planes = []
    for leaving, entering in zip(
        yuv420p_planes(outgoing), yuv420p_planes(incoming), strict=True
    ):
        width = leaving.shape[1]
        planes.append(
            _slide(
                leaving,
                entering,
                round(offset * width),
                max(1, round(SHUTTER_SHARE * speed * width)),
            )
        )
    return yuv420p_frame(*planes)


def _slide(
    leaving: np.ndarray, entering: np.ndarray, shift: int, blur: int
) -> np.ndarray:
    """The window `shift` pixels into the strip [leaving | entering], each row
    averaged over `blur` pixels (a box blur along the motion); uint8."""
    strip = np.concatenate([leaving, entering], axis=1)
    before, after = blur // 2, blur - blur // 2
    padded = np.pad(strip, ((0, 0), (before, after)), mode="edge")
    sums = np.zeros((padded.shape[0], padded.shape[1] + 1), dtype=np.float32)
    np.cumsum(padded, axis=1, out=sums[:, 1:])
    width = leaving.shape[1]
    window = (
        sums[:, shift + blur : shift + blur + width] - sums[:, shift : shift + width]
    )
    window /= blur
    np.rint(window, out=window)
    return np.clip(window, 0, 255).astype(np.uint8)
