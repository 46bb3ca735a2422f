"""Renders the app icon (resources/icons/montage-ai.svg) to PNG sizes, .ico and .icns.

Qt draws the SVG offscreen (QSvgRenderer) and writes ICO and ICNS through its own
image plugins, so the build needs nothing beyond PySide6. The PNGs are build
output (build/icons), never committed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SVG_PATH = ROOT / "resources" / "icons" / "montage-ai.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZE = 256
ICNS_SIZE = 512


def png_name(size: int) -> str:
    return f"montage-ai-{size}.png"


def render_icons(out_dir: Path, svg_path: Path = SVG_PATH) -> list[Path]:
    """Write montage-ai-SIZE.png for every size, montage-ai.ico and .icns."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication([])
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for size in PNG_SIZES:
        written.append(_write(svg_path, size, out_dir / png_name(size), "PNG"))
    written.append(_write(svg_path, ICO_SIZE, out_dir / "montage-ai.ico", "ICO"))
    written.append(_write(svg_path, ICNS_SIZE, out_dir / "montage-ai.icns", "ICNS"))
    return written


def _write(svg_path: Path, size: int, path: Path, image_format: str) -> Path:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg_path))
    if not renderer.isValid():
        raise RuntimeError(f"{svg_path} is not an SVG Qt can draw: fix the file.")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    if not image.save(str(path), image_format):
        raise RuntimeError(
            f"Could not write {path} as {image_format}: check that the folder is "
            "writable and that PySide6 has its image format plugins."
        )
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    for path in render_icons(args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
