"""Save screenshots of the main window in its main states, for a look by eye.

Usage: python tests/app/make_screenshots.py OUTDIR

Runs offscreen with the stub engine; writes empty.png, filled.png, rendering.png,
finished.png and failed.png.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QApplication

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from app.engine_process import EngineCommand  # noqa: E402
from app.main_window import MainWindow  # noqa: E402

log = logging.getLogger("make_screenshots")

CLIP_NAMES = ["beach-sunset.mp4", "VID_20191220_170832.mp4", "bikes.mp4", "diver.mov"]
SONG_NAME = "Sean Hawk - In Rome.ogg"


def stub(stream: str, *options: str) -> EngineCommand:
    stub_engine = HERE / "stub_engine.py"
    arguments = [str(stub_engine), *options, str(HERE / "fixtures" / stream)]
    return EngineCommand(sys.executable, arguments)


def wait_until(
    app: QApplication, condition: Callable[[], bool], timeout_sec=15.0
) -> None:
    deadline = time.monotonic() + timeout_sec
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window never reached the state to capture")
        app.processEvents()
        time.sleep(0.01)


def make_window(work: Path, command: EngineCommand | None = None) -> MainWindow:
    window = MainWindow(command, jobs_dir=work / "jobs", output_dir=work / "Montage AI")
    window.show()
    return window


def fill(window: MainWindow, work: Path) -> None:
    media = work / "media"
    (media / "Holiday 2024").mkdir(parents=True, exist_ok=True)
    for name in [*CLIP_NAMES, SONG_NAME]:
        (media / name).write_bytes(b"")
    window.form.clip_list.add_paths([media / name for name in CLIP_NAMES])
    window.form.clip_list.add_paths([media / "Holiday 2024"])
    window.form.song_edit.setText(str(media / SONG_NAME))
    window.form.prompt_edit.setText("energetic, warm colours")
    window.form.duration_spin.setValue(30)
    window.form.seed_spin.setValue(1234567)


def save(app: QApplication, window: MainWindow, path: Path) -> None:
    app.processEvents()
    window.grab().save(str(path))
    log.info("Saved %s (%dx%d)", path, window.width(), window.height())


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(argv) != 1:
        log.error("Usage: python tests/app/make_screenshots.py OUTDIR")
        return 2
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    app = QApplication([])
    with tempfile.TemporaryDirectory(prefix="montage-screens-") as work:
        capture_states(app, Path(work), out_dir)
    return 0


def capture_states(app: QApplication, work: Path, out_dir: Path) -> None:

    window = make_window(work)
    save(app, window, out_dir / "empty.png")
    fill(window, work)
    save(app, window, out_dir / "filled.png")
    window.close()

    window = make_window(work, stub("hangs_in_render.jsonl", "--delay", "0.002"))
    fill(window, work)
    window.create_button.click()
    wait_until(app, lambda: "Encoding" in window.engine.stderr_tail())
    save(app, window, out_dir / "rendering.png")
    window.close()

    window = make_window(work, stub("normal_run.jsonl", "--delay", "0.002"))
    fill(window, work)
    window.create_button.click()
    wait_until(app, lambda: window.open_button.isVisible())
    save(app, window, out_dir / "finished.png")
    window.close()

    window = make_window(work, stub("dies_halfway.jsonl", "--delay", "0.002"))
    fill(window, work)
    window.create_button.click()
    wait_until(app, lambda: window.error_label.isVisible())
    save(app, window, out_dir / "failed.png")
    window.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
