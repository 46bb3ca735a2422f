"""Save stills of the real clips in every style, 16:9 and 9:16, for a look by eye.

Usage: python -m tests.make_style_stills OUTDIR [REAL_MEDIA]  (default
build/real-media, filled by `make real-media`)

Renders a short montage per style and aspect with the real engine, and saves the
middle frame of its middle shot as STYLE-16x9.png and STYLE-9x16.png, all of them
side by side in styles.png, and every LUT on the same three frames in looks.png.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import logging
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter

from engine.frames import FrameTransform, SourceReader
from engine.job import run_job
from engine.luts import lut_names, lut_title
from engine.placements import read_placements
from engine.probe import probe_media
from engine.protocol import Event, EventKind, JobSpec
from engine.styles import load_style, style_names

log = logging.getLogger("make_style_stills")

SONG = "Sean Hawk - In Rome.ogg"
DURATION_SEC = 12
ASPECTS = {"16:9": "16x9", "9:16": "9x16"}
LABEL_PX = 22
SMOOTH = Qt.TransformationMode.SmoothTransformation
# The clips whose middle frames every LUT is shown on.
LOOK_CLIPS = ["cockatoo.mp4", "bikes.mp4", "VID_20191220_170832.mp4"]


def render_style(media: Path, out_dir: Path, style: str, aspect: str) -> np.ndarray:
    """Render one montage; the middle frame of its middle shot, as RGB."""
    output = out_dir / "renders" / f"{style}-{ASPECTS[aspect]}.mp4"
    output.parent.mkdir(parents=True, exist_ok=True)
    spec = JobSpec(
        clips=[str(media / "video")], music=str(media / "music" / SONG),
        output=str(output), style=style, aspect=aspect, duration_sec=DURATION_SEC,
        quality="preview", seed=1,
    )  # fmt: skip

    def report(event: Event) -> None:
        if event.kind is EventKind.WARNING:
            log.info("%s %s: %s", style, aspect, event.data["message"])

    run_job(spec, report)
    timeline = otio.adapters.read_from_file(str(output.with_suffix(".otio")))
    return frame_of(output, middle_frame(timeline))


def middle_frame(timeline: otio.schema.Timeline) -> int:
    """The middle frame of the middle shot, moved out of any transition."""
    placements, joins = read_placements(timeline)
    shot = placements[len(placements) // 2]
    inside = {n for j in joins for n in range(j.frame - j.before, j.frame + j.after)}
    frames = [n for n in range(shot.record_start, shot.record_end) if n not in inside]
    return frames[len(frames) // 2] if frames else shot.record_start


def frame_of(path: Path, number: int) -> np.ndarray:
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == number:
                return np.asarray(frame.to_ndarray(format="rgb24"))
    raise ValueError(f"{path} has no frame {number}")


def look_frames(media: Path, width: int, height: int) -> dict[str, list[np.ndarray]]:
    """Each LUT (and none) on the middle frame of each of LOOK_CLIPS."""
    looks: dict[str, list[np.ndarray]] = {"none": []}
    looks |= {name: [] for name in lut_names()}
    for clip in LOOK_CLIPS:
        info = probe_media(media / "video" / clip)
        for name in looks:
            grade = {} if name == "none" else {"lut": name}
            transform = FrameTransform(width, height, "crop", grade, Fraction(30))
            reader = SourceReader(str(info.path), transform, info.rotation,
                                  info.sample_aspect, info.fps_fraction)  # fmt: skip
            try:
                shaped = reader.frame_at(info.start_sec + info.duration_sec / 2)
                looks[name].append(np.asarray(shaped.to_ndarray(format="rgb24")))
            finally:
                reader.close()
    return looks


def to_image(rgb: np.ndarray) -> QImage:
    height, width, _ = rgb.shape
    data = np.ascontiguousarray(rgb).tobytes()
    return QImage(data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def sheet(rows: list[tuple[str, list[np.ndarray]]], path: Path, height: int) -> None:
    """Pictures scaled to one height in labelled rows, saved as one PNG."""
    images = [
        (label, [to_image(p).scaledToHeight(height, SMOOTH) for p in pictures])
        for label, pictures in rows
    ]
    width = max(sum(i.width() for i in row) for _, row in images)
    sheet = QImage(width, len(rows) * (height + LABEL_PX), QImage.Format.Format_RGB888)
    sheet.fill(QColor("black"))
    painter = QPainter(sheet)
    painter.setPen(QColor("white"))
    for number, (label, row) in enumerate(images):
        top = number * (height + LABEL_PX)
        painter.drawText(4, top, width, LABEL_PX, Qt.AlignmentFlag.AlignVCenter, label)
        left = 0
        for image in row:
            painter.drawImage(left, top + LABEL_PX, image)
            left += image.width()
    painter.end()
    sheet.save(str(path))


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not argv:
        print(__doc__)
        return 2
    out_dir = Path(argv[0])
    media = Path(argv[1] if len(argv) > 1 else "build/real-media")
    if not (media / "music" / SONG).is_file():
        print(f"{media} has no real media: run `make real-media` first.")
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    _app = QGuiApplication.instance() or QGuiApplication(sys.argv)
    rows = []
    for style in style_names():
        stills = []
        for aspect, suffix in ASPECTS.items():
            still = render_style(media, out_dir, style, aspect)
            to_image(still).save(str(out_dir / f"{style}-{suffix}.png"))
            stills.append(still)
        lut = load_style(style).grade.lut
        rows.append((f"{style} (LUT {lut_title(lut)})", stills))
    sheet(rows, out_dir / "styles.png", 320)
    looks = look_frames(media, 320, 180)
    sheet(list(looks.items()), out_dir / "looks.png", 180)
    log.info("Stills are in %s", out_dir.absolute())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
