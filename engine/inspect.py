"""`python -m engine.inspect clips PATH... | music SONG | upscale ...`: media facts
for the window.

The app never decodes media itself: it runs this short subprocess and reads one
JSON event per file (clip_info or music_info) from its stdout. A file that is not
usable media gets `ok: false` and the reason, never a crash of the window.
"""

from __future__ import annotations

import logging
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from engine.cache import content_hash
from engine.errors import EngineError
from engine.frames import FrameTransform, SourceReader
from engine.paths import cache_dir
from engine.probe import expand_inputs, probe_media
from engine.protocol import Event, EventKind

log = logging.getLogger(__name__)

THUMBNAIL_HEIGHT = 90
WAVEFORM_POINTS = 1200
WAVEFORM_RATE = 4000


def emit(kind: EventKind, data: dict[str, Any]) -> None:
    sys.stdout.write(Event(kind, data).to_line() + "\n")
    sys.stdout.flush()


def describe_clip(path: Path) -> dict[str, Any]:
    """Probe facts and a thumbnail PNG path for one clip, or why it is unusable."""
    try:
        info = probe_media(path)
        thumbnail = write_thumbnail(info.path, info.duration_sec, info.start_sec,
                                    info.rotation, info.sample_aspect, info.fps_fraction,
                                    info.display_size)  # fmt: skip
    except EngineError as error:
        return {"path": str(path), "ok": False, "message": error.message}
    return {
        "path": info.path,
        "ok": True,
        "duration_sec": round(info.duration_sec, 3),
        "width": round(info.display_size[0]),
        "height": round(info.display_size[1]),
        "fps": round(float(info.fps_fraction), 3),
        "variable_frame_rate": info.variable_frame_rate,
        "codec": info.codec,
        "has_audio": bool(info.audio_streams),
        "still": info.still,
        "size_bytes": Path(info.path).stat().st_size,
        "thumbnail": str(thumbnail),
    }


def write_thumbnail(
    path: str,
    duration_sec: float,
    start_sec: float,
    rotation: int,
    sample_aspect: tuple[int, int],
    rate: Any,
    display_size: tuple[float, float],
) -> Path:
    """An upright PNG of the frame a tenth of the way in, cached by content."""
    target = cache_dir("thumbnails") / f"{content_hash(path)}.png"
    if target.exists():
        return target
    width = max(2, round(THUMBNAIL_HEIGHT * display_size[0] / display_size[1] / 2) * 2)
    transform = FrameTransform(width, THUMBNAIL_HEIGHT, "fit", {}, fps=Fraction(25))
    reader = SourceReader(path, transform, rotation, sample_aspect, rate)
    try:
        frame = reader.frame_at(start_sec + duration_sec * 0.1)
        encoder = av.CodecContext.create("png", "w")
        encoder.width, encoder.height = frame.width, frame.height
        encoder.pix_fmt = "rgb24"
        packets = encoder.encode(frame.reformat(format="rgb24"))
        packets += encoder.encode(None)
    finally:
        reader.close()
    temp = target.with_suffix(".part")
    temp.write_bytes(b"".join(bytes(packet) for packet in packets))
    temp.replace(target)
    return target


def describe_music(path: Path) -> dict[str, Any]:
    """Beats, downbeats, sections and a waveform outline of the song."""
    from engine.music import analyze_music, decode_audio_mono

    try:
        music = analyze_music(path)
        samples = decode_audio_mono(path, WAVEFORM_RATE)
    except EngineError as error:
        return {"path": str(path), "ok": False, "message": error.message}
    return {
        "path": str(path),
        "ok": True,
        "duration_sec": round(music.duration_sec, 3),
        "tempo_bpm": round(music.tempo_bpm, 2),
        "beats_sec": [round(b, 4) for b in music.beats_sec],
        "downbeats_sec": [round(b, 4) for b in music.downbeats_sec],
        "sections": [
            {"start_sec": s.start_sec, "end_sec": s.end_sec, "kind": s.kind}
            for s in music.sections
        ],
        "waveform": waveform_peaks(samples, WAVEFORM_POINTS),
    }


def waveform_peaks(samples: np.ndarray, points: int) -> list[float]:
    """The loudest absolute sample in each of `points` equal stretches, 0..1."""
    if samples.size == 0:
        return []
    count = min(points, samples.size)
    usable = samples[: samples.size // count * count].reshape(count, -1)
    peaks = np.abs(usable).max(axis=1)
    top = float(peaks.max()) or 1.0
    return [round(float(p) / top, 3) for p in peaks]


def describe_upscale(argv: list[str]) -> dict[str, Any]:
    """The cost of upscaling for `upscale MODE ASPECT QUALITY DURATION_SEC FPS
    CLIP...` (engine.upscale_plan.estimate_upscale)."""
    from engine.plan import output_size
    from engine.upscale_plan import estimate_upscale

    mode, aspect, quality, duration_text, fps_text, *clips = argv
    infos = []
    for path in expand_inputs(clips):
        try:
            infos.append(probe_media(path))
        except EngineError as error:
            log.warning("Left out of the upscale estimate: %s", error.message)
    size = output_size(aspect, quality, None)
    fps = float(fps_text)
    frames = round(float(duration_text) * fps)
    return estimate_upscale(infos, mode, size, "crop", frames, fps)


USAGE = (
    "usage: python -m engine.inspect clips PATH... | music SONG | upscale MODE "
    "ASPECT QUALITY DURATION_SEC FPS CLIP...\n"
)


def main(argv: list[str]) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    if argv[:1] == ["upscale"] and len(argv) >= 7:
        emit(EventKind.UPSCALE_INFO, describe_upscale(argv[1:]))
        return 0
    if len(argv) < 2 or argv[0] not in ("clips", "music"):
        sys.stderr.write(USAGE)
        return 2
    if argv[0] == "music":
        emit(EventKind.MUSIC_INFO, describe_music(Path(argv[1])))
        return 0
    for path in expand_inputs(argv[1:]):
        emit(EventKind.CLIP_INFO, describe_clip(path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
