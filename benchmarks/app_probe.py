"""The child process of the app benchmark's stall probe: the real window, real work.

A 5 ms QTimer records when it ticks; a gap between ticks longer than the interval
is time the GUI thread spent on something else. Only `python -m benchmarks.app
--probe-stalls` imports this module, so the benchmark runner never loads Qt.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEventLoop, QMimeData, QObject, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

from app.drop_widgets import PATH_ROLE, STATE_ROLE, ClipState
from app.job_records import JobStatus
from app.main_window import MainWindow
from tests.audio_media import write_click_track
from tests.media import write_marker_clip

if TYPE_CHECKING:
    from benchmarks.app import Sizes

PROBE_INTERVAL_MS = 5
SETTLE_SEC = 0.5
POLL_MS = 50
WORK_TIMEOUT_SEC = 360
ENDED = (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED)


class TickProbe(QObject):
    """A precise 5 ms timer that notes when it ticks, and what the window did last."""

    def __init__(self) -> None:
        super().__init__()
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(PROBE_INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        self._ticks_sec: list[float] = []
        self._cpu_sec: list[float] = []
        self._markers: list[tuple[float, str]] = []

    def start(self) -> None:
        self._markers = [(time.monotonic(), "start")]
        self._ticks_sec = [time.monotonic()]
        self._cpu_sec = [time.thread_time()]
        self._timer.start()

    def mark(self, label: str) -> None:
        """Note what the window is handling now, to name the longest stall."""
        self._markers.append((time.monotonic(), label))

    def stop(self) -> dict[str, Any]:
        """The gaps between ticks: longest, 99th percentile, and when."""
        self._timer.stop()
        ticks = self._ticks_sec
        gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
        cpu = self._cpu_sec
        busy = [later - earlier for earlier, later in itertools.pairwise(cpu)]
        longest = max(range(len(gaps)), key=gaps.__getitem__)
        return {
            "ticks": len(gaps),
            "seconds": ticks[-1] - ticks[0],
            "max_ms": gaps[longest] * 1000,
            "p99_ms": _percentile(gaps, 0.99) * 1000,
            "longest_at": self._label_before(ticks[longest + 1]),
            "max_cpu_ms": max(busy) * 1000,
            "longest": [
                (
                    round(gaps[index] * 1000, 1),
                    round(busy[index] * 1000, 1),
                    self._label_before(ticks[index + 1]),
                )
                for index in sorted(range(len(gaps)), key=gaps.__getitem__)[-8:]
            ],
        }

    def _tick(self) -> None:
        self._ticks_sec.append(time.monotonic())
        self._cpu_sec.append(time.thread_time())

    def _label_before(self, moment_sec: float) -> str:
        labels = [label for when, label in self._markers if when <= moment_sec]
        return labels[-1] if labels else "start"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def spin(seconds: float) -> None:
    """Run the event loop for a while."""
    loop = QEventLoop()
    QTimer.singleShot(round(seconds * 1000), loop.quit)
    loop.exec()


def spin_until(done: Callable[[], bool], timeout_sec: float) -> bool:
    """Run the event loop until done() is true or the time is up."""
    deadline = time.monotonic() + timeout_sec
    while not done():
        if time.monotonic() > deadline:
            return False
        spin(POLL_MS / 1000)
    return True


def drop_files(target: QWidget, paths: list[Path]) -> None:
    """Drag files onto target and drop them, as a file manager does."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    centre = target.rect().center()
    actions = Qt.DropAction.CopyAction
    buttons = Qt.MouseButton.LeftButton
    modifiers = Qt.KeyboardModifier(0)
    QApplication.sendEvent(
        target, QDragEnterEvent(centre, actions, mime, buttons, modifiers)
    )
    drop = QDropEvent(QPointF(centre), actions, mime, buttons, modifiers)
    QApplication.sendEvent(target, drop)


def make_media(folder: Path, sizes: Sizes) -> tuple[list[Path], list[Path], Path]:
    """Clips to render, clips to thumbnail and a click song; kept for later runs."""
    folder.mkdir(parents=True, exist_ok=True)
    render_clips = []
    for number in range(sizes.render_clips):
        path = folder / f"render-{sizes.render_clip_frames}-{number}.mp4"
        if not path.exists():
            frames = sizes.render_clip_frames
            cuts = range(50, frames, 50)
            write_marker_clip(path, frames=frames, size=(960, 540), cuts=cuts)
        render_clips.append(path)
    thumbnail_clips = []
    for number in range(sizes.thumbnail_clips):
        path = folder / f"thumbnail-{number:02d}.mp4"
        if not path.exists():
            write_marker_clip(path, frames=50, size=(640, 360), cuts=(25,))
        thumbnail_clips.append(path)
    song = folder / f"clicks-{sizes.montage_sec}.wav"
    if not song.exists():
        write_click_track(song, bpm=120, duration_sec=sizes.montage_sec + 2)
    return render_clips, thumbnail_clips, song


def use_fresh_app_dirs(workdir: Path) -> Path:
    """A new job store, settings, log and media cache; numba's cache is kept."""
    root = Path(tempfile.mkdtemp(prefix="stall-", dir=workdir))
    os.environ.update(
        {
            "MONTAGE_AI_DATA_DIR": str(root / "data"),
            "MONTAGE_AI_CONFIG_DIR": str(root / "config"),
            "XDG_STATE_HOME": str(root / "state"),
            "MONTAGE_AI_CACHE_DIR": str(root / "cache"),
            "NUMBA_CACHE_DIR": str(workdir / "numba-cache"),
        }
    )
    os.environ.pop("MONTAGE_AI_ENGINE_COMMAND", None)
    return root


def thumbnails_shown(window: MainWindow, paths: list[Path]) -> int:
    wanted = {str(path) for path in paths}
    clip_list = window.form.clip_list
    items = (clip_list.item(row) for row in range(clip_list.count()))
    return sum(
        item.data(PATH_ROLE) in wanted and item.data(STATE_ROLE) == ClipState.USABLE
        for item in items
    )


def connect_markers(window: MainWindow, probe: TickProbe) -> None:
    queue, inspector = window.queue, window.form.inspector
    queue.job_changed.connect(
        lambda job_id: probe.mark(f"job: {queue.record(job_id).stage}")
    )
    inspector.clip_described.connect(lambda info: probe.mark("clip described"))
    inspector.music_described.connect(lambda info: probe.mark("song described"))


def probe_stalls(workdir: Path, sizes: Sizes) -> dict[str, Any]:
    """Tick gaps on the idle window, then while it renders and makes thumbnails."""
    workdir.mkdir(parents=True, exist_ok=True)
    render_clips, thumbnail_clips, song = make_media(workdir / "media", sizes)
    root = use_fresh_app_dirs(workdir)
    app = QApplication([])
    window = MainWindow()
    window.show()
    spin(SETTLE_SEC)
    probe = TickProbe()
    probe.start()
    spin(sizes.idle_sec)
    idle = probe.stop()

    connect_markers(window, probe)
    probe.start()
    started_sec = time.monotonic()
    job_id = start_render(window, render_clips, song, sizes, root)
    drop_files(window.form.clip_list.viewport(), thumbnail_clips)

    def work_done() -> bool:
        return (
            window.queue.record(job_id).status in ENDED
            and not window.form.inspector.is_busy()
        )

    spin_until(work_done, WORK_TIMEOUT_SEC)
    render_sec = time.monotonic() - started_sec
    busy = probe.stop()
    report = {
        "idle": idle,
        "busy": busy,
        "job_status": str(window.queue.record(job_id).status),
        "render_sec": render_sec,
        "render_clips": len(render_clips),
        "montage_sec": sizes.montage_sec,
        "thumbnail_clips": len(thumbnail_clips),
        "thumbnails": thumbnails_shown(window, thumbnail_clips),
    }
    window.close()
    app.processEvents()
    return report


def start_render(
    window: MainWindow, clips: list[Path], song: Path, sizes: Sizes, root: Path
) -> int:
    """Fill the form as a user would and press Create montage; the job's id."""
    form = window.form
    drop_files(form.clip_list.viewport(), clips)
    form.song_edit.setText(str(song))
    form.duration_spin.setValue(sizes.montage_sec)
    form.quality_combo.setCurrentIndex(form.quality_combo.findData("preview"))
    form.output_edit.setText(str(root / "out" / "montage.mp4"))
    job_id = window.create_job()
    if job_id is None:
        raise RuntimeError(f"the job was refused: {window.error_label.text()}")
    return job_id
