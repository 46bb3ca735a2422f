"""Save screenshots of the main window in its main states, for a look by eye.

Usage: python tests/app/make_screenshots.py OUTDIR [WIDTHxHEIGHT]

The windows open at their default size, or at WIDTHxHEIGHT (880x640, the
smallest, shows what scrolls). Runs offscreen with the stub engine; writes
empty.png, filled.png, rendering.png, finished.png, failed.png, interrupted.png
(started again after a crash), queue.png (five jobs, a retried one waiting last),
warnings.png (a finished job's warnings unfolded), export-menu.png (the Export
menu of a finished job) and exported.png (the message after an EDL export, from
the stub exporter). The
clips and the song are generated media, described by the real `engine.inspect`,
so the rows show thumbnails and the song its beats.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QPoint
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from app.engine_process import EngineCommand  # noqa: E402
from app.export_menu import ExportMenu  # noqa: E402
from app.job_records import JobStatus  # noqa: E402
from app.job_schema import DATA_DIR_ENV, default_store_path  # noqa: E402
from app.job_store import JobStore  # noqa: E402
from app.main_window import MainWindow  # noqa: E402
from app.settings import CONFIG_DIR_ENV  # noqa: E402
from engine import protocol  # noqa: E402
from tests.audio_media import write_song  # noqa: E402
from tests.input_media import write_empty  # noqa: E402
from tests.media import write_marker_clip  # noqa: E402

log = logging.getLogger("make_screenshots")

CLIP_NAMES = ["beach-sunset.mp4", "VID_20191220_170832.mp4", "bikes.mp4", "diver.mov"]
SONG_NAME = "Sean Hawk - In Rome.ogg"
# (stored size, rotation, seconds) of each clip in CLIP_NAMES, then the folder's.
CLIP_SHAPES = [((640, 360), 0, 6), ((320, 180), 90, 5), ((480, 270), 0, 3)]
CLIP_SHAPES += [((320, 180), 0, 4), ((320, 180), 0, 2), ((320, 180), 0, 3)]
FOLDER_CLIPS = ["GOPR0042.mp4", "GOPR0043.mp4"]
BROKEN_CLIP = "copy-interrupted.mp4"
# A cold numba cache costs up to a minute on the first analysis.
INSPECT_TIMEOUT_SEC = 180.0
# What the real engine says of BROKEN_CLIP, of a song shorter than asked, and
# when no clip is left.
NOT_A_VIDEO = (
    f"{BROKEN_CLIP}: not a video FFmpeg can read (it may be another kind of file "
    "with a video extension, or damaged). Check that it plays, or remove it from "
    "the clips."
)
SONG_TOO_SHORT = (
    f"{SONG_NAME} has 30.0 s of music, less than the 60 s asked: the montage ends "
    "with the song and lasts 30.0 s (the song is not looped). Choose a longer song "
    "for a longer montage."
)
NO_USABLE_CLIPS = (
    "None of the clips could be used (see the warnings for each file). Add video "
    "files that play in a video player."
)
# The size given on the command line, if any: (width, height).
window_size: list[int] = []
# What the real exporter says of an EDL of a montage in the style "mtv".
EDL_WARNINGS = [
    "A CMX 3600 EDL counts every timecode at one rate (30 fps): the source "
    "timecodes of diver.mov (25 fps) are their times counted at 30 fps. Editors "
    "that read them at the clip's own rate can land a frame off; use the .otio or "
    "FCP 7 XML export for those.",
    "The EDL has no place for the colour grade of the style 'mtv'; the footage "
    "appears ungraded in your editor.",
    "The EDL holds no markers: the 64 beat markers are in the .otio and FCP 7 XML "
    "exports.",
    "The EDL has no audio fades: add the song's 2 s fade-out at the end yourself.",
]


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


def make_window(
    work: Path,
    command: EngineCommand | None = None,
    state: str = "empty",
    export_command: EngineCommand | None = None,
) -> MainWindow:
    """A window with its own job list, so each state shows only its own jobs."""
    os.environ[DATA_DIR_ENV] = str(work / f"data-{state}")
    os.environ[CONFIG_DIR_ENV] = str(work / "config")
    window = MainWindow(
        command,
        jobs_dir=work / "jobs",
        output_dir=work / "Montage AI",
        export_command=export_command,
    )
    if window_size:
        window.resize(*window_size)
    window.show()
    return window


def fill(window: MainWindow, work: Path) -> None:
    media = work / "media"
    (media / "Holiday 2024").mkdir(parents=True, exist_ok=True)
    write_media(media)
    window.form.clip_list.add_paths([media / name for name in CLIP_NAMES])
    window.form.clip_list.add_paths([media / "Holiday 2024"])
    window.form.song_edit.setText(str(media / SONG_NAME))
    window.form.prompt_edit.setText("energetic, warm colours")
    window.form.duration_spin.setValue(30)
    window.form.seed_spin.setValue(1234567)


def write_media(media: Path) -> None:
    """Real clips and a song under the stand-in names, written once per run."""
    if (media / SONG_NAME).exists():
        return
    folder = [f"Holiday 2024/{name}" for name in FOLDER_CLIPS]
    for shot, (name, (size, rotation, seconds)) in enumerate(
        zip([*CLIP_NAMES, *folder], CLIP_SHAPES, strict=True)
    ):
        # The thumbnail is the frame a tenth of the way in: give each its own shot.
        frames = 25 * seconds
        cuts = [*range(1, shot + 1), frames // 2]
        write_marker_clip(
            media / name, frames=frames, size=size, rotation=rotation, cuts=cuts
        )
    write_empty(media / "Holiday 2024" / "IMG_0042.mp4")
    write_empty(media / BROKEN_CLIP)
    sections = (("quiet", 6.0), ("build", 6.0), ("peak", 12.0), ("quiet", 6.0))
    write_song(media / SONG_NAME, bpm=128, sections=sections)


def wait_for_inspection(app: QApplication, window: MainWindow) -> None:
    window.form.analyse_song()
    wait_until(app, lambda: not window.form.inspector.is_busy(), INSPECT_TIMEOUT_SEC)


def save(app: QApplication, window: QWidget, path: Path) -> None:
    app.processEvents()
    window.grab().save(str(path))
    log.info("Saved %s (%dx%d)", path, window.width(), window.height())


def quit_without_asking(window: MainWindow, running_count: int) -> bool:
    """Offscreen, the question before closing a window that renders would wait
    for a click forever: close as if Quit were pressed."""
    return True


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(argv) not in (1, 2):
        log.error("Usage: python tests/app/make_screenshots.py OUTDIR [WIDTHxHEIGHT]")
        return 2
    if len(argv) == 2:
        width, _, height = argv[1].partition("x")
        window_size[:] = [int(width), int(height)]
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    MainWindow.confirm_quit = quit_without_asking  # type: ignore[method-assign]
    app = QApplication([])
    with tempfile.TemporaryDirectory(prefix="montage-screens-") as work:
        capture_states(app, Path(work), out_dir)
    return 0


def capture_states(app: QApplication, work: Path, out_dir: Path) -> None:

    window = make_window(work)
    save(app, window, out_dir / "empty.png")
    fill(window, work)
    window.form.clip_list.add_paths([work / "media" / BROKEN_CLIP])
    wait_for_inspection(app, window)
    save(app, window, out_dir / "filled.png")
    window.close()

    window = make_window(
        work, stub("hangs_in_render.jsonl", "--delay", "0.002"), "rendering"
    )
    fill(window, work)
    running_id = window.create_job()
    window.create_job()
    assert running_id is not None
    wait_until(app, lambda: "Encoding" in window.queue.stderr_tail(running_id))
    window.queue_panel.select_job(running_id)
    save(app, window, out_dir / "rendering.png")
    window.close()

    window = make_window(work, stub("normal_run.jsonl", "--delay", "0.002"), "finished")
    fill(window, work)
    window.create_button.click()
    wait_until(app, lambda: window.queue_panel.open_button.isEnabled())
    save(app, window, out_dir / "finished.png")
    window.close()

    window = make_window(work, stub("dies_halfway.jsonl", "--delay", "0.002"), "failed")
    fill(window, work)
    failed_id = window.create_job()
    assert failed_id is not None
    wait_until(app, lambda: is_failed(window, failed_id))
    save(app, window, out_dir / "failed.png")
    window.close()

    window = make_window_after_a_crash(app, work)
    save(app, window, out_dir / "interrupted.png")
    window.close()

    capture_queue(app, work, out_dir)
    capture_export(app, work, out_dir)


def capture_queue(app: QApplication, work: Path, out_dir: Path) -> None:
    """Five jobs: finished with warnings, failed, rendering, and two waiting, the
    second of them cancelled and retried before the other."""
    os.environ[DATA_DIR_ENV] = str(work / "data-queue")
    with JobStore(default_store_path()) as store:
        ids = [store.add(queue_spec(work, number)) for number in range(5)]
        finish_with_warnings(store, ids[0], work)
        store.mark_running(ids[1], os.getpid())
        store.add_warning(ids[1], 1, NOT_A_VIDEO, str(work / "media" / BROKEN_CLIP))
        store.mark_failed(ids[1], "no_usable_clips", NO_USABLE_CLIPS, "")
        store.mark_cancelled(ids[3])
        store.retry(ids[3])
    window = make_window(work, stub("hangs_in_render.jsonl"), "queue")
    wait_until(app, lambda: window.queue.running_count() == 1)
    window.queue_panel.select_job(ids[1])
    save(app, window, out_dir / "queue.png")
    window.queue_panel.select_job(ids[0])
    window.queue_panel.details_button.setChecked(True)
    save(app, window, out_dir / "warnings.png")
    window.close()


def queue_spec(work: Path, number: int) -> protocol.JobSpec:
    media = work / "media"
    return protocol.JobSpec(
        clips=[str(media / name) for name in CLIP_NAMES],
        music=str(media / SONG_NAME),
        output=str(work / "Montage AI" / f"montage-20261204-09{number}512.mp4"),
    )


def finish_with_warnings(store: JobStore, job_id: int, work: Path) -> None:
    """A finished job whose engine warned about a clip and the song, as after a
    render of a 60 s montage to a 30 s song."""
    store.mark_running(job_id, os.getpid())
    media = work / "media"
    store.add_warning(job_id, 1, NOT_A_VIDEO, str(media / BROKEN_CLIP))
    store.add_warning(job_id, 1, SONG_TOO_SHORT, str(media / SONG_NAME))
    summary = {"shots": 21, "sources_used": 4, "sources": 5, "duration_sec": 30.0}
    store.add_summary(job_id, 1, {**summary, "tempo_bpm": 128.0, "style": "dynamic"})
    video = store.get(job_id).spec.output
    store.mark_finished(job_id, {"video": video, "otio": video[:-4] + ".otio"})


def capture_export(app: QApplication, work: Path, out_dir: Path) -> None:
    """The Export menu open on a finished job, then the message after an EDL."""
    warnings = [option for text in EDL_WARNINGS for option in ("--warning", text)]
    exporter = EngineCommand(
        sys.executable, [str(HERE / "stub_exporter.py"), *warnings, "--delay", "0.3"]
    )
    os.environ[DATA_DIR_ENV] = str(work / "data-export")
    job_id = add_finished_job(work)
    window = make_window(work, stub("hangs_in_render.jsonl"), "export", exporter)
    window.queue_panel.select_job(job_id)
    menu = window.queue_panel.export_button.menu()
    assert isinstance(menu, ExportMenu)
    # NOTE: Qt 6.11 pops a button's menu up and returns; older versions block.
    window.queue_panel.export_button.showMenu()
    wait_until(app, menu.isVisible)
    # Hovered, as a user reading the entries would; its tip shows in the status bar.
    menu.setActiveAction(menu.format_actions["fcp7"])
    save_with_popup(app, window, menu, out_dir / "export-menu.png")
    menu.format_actions["edl"].trigger()
    menu.hide()

    controller = window.export_controller
    wait_until(app, lambda: controller.last_dialog is not None)
    assert controller.last_dialog is not None
    save(app, controller.last_dialog, out_dir / "exported.png")
    window.close()


def add_finished_job(work: Path) -> int:
    """A finished job whose video and .otio are on disk, as after a render."""
    folder = work / "Montage AI"
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / "montage-20261203-171858.mp4"
    otio_path = video.with_suffix(".otio")
    for path in (video, otio_path):
        path.write_bytes(b"")
    media = work / "media"
    spec = protocol.JobSpec(
        clips=[str(media / name) for name in CLIP_NAMES],
        music=str(media / SONG_NAME),
        output=str(video),
        style="mtv",
    )
    with JobStore(default_store_path()) as store:
        job_id = store.add(spec)
        store.mark_running(job_id, os.getpid())
        store.mark_finished(job_id, {"video": str(video), "otio": str(otio_path)})
    return job_id


def save_with_popup(
    app: QApplication, window: MainWindow, popup: QWidget, path: Path
) -> None:
    """The window with an open popup drawn where it shows, below its button.

    Offscreen, a popup is a window of its own, left out of the window's grab.
    """
    app.processEvents()
    image = window.grab()
    button = window.queue_panel.export_button
    below = button.mapTo(window, QPoint(0, button.height()))
    top = below.y()
    if top + popup.height() > window.height():
        top = below.y() - button.height() - popup.height()
    left = min(below.x(), window.width() - popup.width())
    painter = QPainter(image)
    painter.drawPixmap(QPoint(left, top), QPixmap(popup.grab()))
    painter.end()
    image.save(str(path))
    log.info("Saved %s (%dx%d)", path, window.width(), window.height())


def make_window_after_a_crash(app: QApplication, work: Path) -> MainWindow:
    """The app killed while rendering a job: one done, one lost, one waiting."""
    os.environ[DATA_DIR_ENV] = str(work / "data-interrupted")
    media = work / "media"
    spec = protocol.JobSpec(
        clips=[str(media / CLIP_NAMES[0])],
        music=str(media / SONG_NAME),
        output=str(work / "Montage AI" / "montage-20261203-171728.mp4"),
    )
    with JobStore(default_store_path()) as store:
        for number, status in enumerate(("finished", "running", "waiting")):
            job_id = store.add(
                dataclasses.replace(spec, output=f"{spec.output[:-4]}-{number}.mp4")
            )
            if status != "waiting":
                # A process id that no process has: the app died with it.
                store.mark_running(job_id, 4_000_000 + number)
            if status == "finished":
                store.mark_finished(job_id, {"video": spec.output})
    window = make_window(work, stub("hangs_in_render.jsonl"), "interrupted")
    wait_until(app, lambda: window.queue.running_count() == 1)
    window.queue_panel.select_job(2)
    return window


def is_failed(window: MainWindow, job_id: int) -> bool:
    return window.store.get(job_id).status is JobStatus.FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
