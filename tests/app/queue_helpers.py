"""Helpers for render queue tests: jobs that need no media, and waits on the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.job_store import JobStatus, JobStore
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
