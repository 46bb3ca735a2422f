"""Helpers for render queue tests: jobs that need no media, waits on the store, and
a heartbeat that shows whether the event loop kept turning."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

from app.job_records import JobStatus
from app.job_store import JobStore
from engine import protocol


def job_spec(tmp_path: Path, name: str, quality: str = "final") -> protocol.JobSpec:
    """A job whose inputs are empty files: the stub engine never opens them."""
    clip, song = tmp_path / "beach.mp4", tmp_path / "song.ogg"
    for path in (clip, song):
        path.touch()
    output = tmp_path / "out" / f"{name}.mp4"
    return protocol.JobSpec(
        clips=[str(clip)], music=str(song), output=str(output), quality=quality
    )


def statuses(store: JobStore) -> dict[int, JobStatus]:
    return {record.id: record.status for record in store.list_jobs()}


def status_is(store: JobStore, job_id: int, *wanted: JobStatus) -> Callable[[], bool]:
    """A condition for qtbot.waitUntil: the job is in one of the wanted states."""
    return lambda: store.get(job_id).status in wanted


def heartbeat_gaps(widget: QWidget) -> list[float]:
    """Seconds between ticks of a 10 ms timer, collected while the test waits."""
    gaps: list[float] = []
    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer(widget)
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    return gaps
