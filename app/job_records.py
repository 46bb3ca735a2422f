"""A job as the job store keeps it: its status, its record and warnings, and the
store's errors; standard library and psutil only, no Qt.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil

from engine import protocol

# psutil derives a process's start time from the boot time, in whole seconds.
START_TIME_SLACK_SEC = 2.0


class JobStatus(enum.StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


STATUSES = tuple(status.value for status in JobStatus)
RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED)


class JobStoreError(Exception):
    """Root of the job store's errors; each message is meant for the user."""


class JobNotFoundError(JobStoreError, LookupError):
    """No job has this id (another window may have removed it)."""


class IllegalTransitionError(JobStoreError, ValueError):
    """The job is not in a state that allows this change."""


class QueueFullError(JobStoreError, ValueError):
    """Too many jobs are waiting to take another."""


class StoreBusyError(JobStoreError):
    """Another window held the database for longer than the busy timeout."""


class StoreVersionError(JobStoreError):
    """The database was written by a newer version of the app."""


@dataclass(frozen=True)
class JobWarning:
    """A warning event of a job's engine: what it changed or left out, and why."""

    message: str
    # The file it is about, or "".
    path: str = ""


@dataclass(frozen=True)
class JobRecord:
    """One row of the jobs table, with its spec parsed."""

    id: int
    created_at: datetime
    updated_at: datetime
    spec: protocol.JobSpec
    status: JobStatus
    stage: str
    progress: float
    eta_sec: float | None
    outputs: dict[str, str]
    error_code: str | None
    error_message: str | None
    log_tail: str
    engine_pid: int | None
    # 1 for a new job, plus one for each retry.
    attempts: int
    started_at: datetime | None
    # Where it stands in the queue: waiting jobs run in this order.
    queue_order: int = 0
    # The engine's warnings and finished summary, of the current attempt only.
    warnings: tuple[JobWarning, ...] = ()
    summary: dict[str, Any] = field(default_factory=dict)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def is_process_alive(pid: int, started_at: datetime | None) -> bool:
    """Whether pid is still the process that was started before started_at.

    After a reboot the pid may belong to an unrelated, younger process.
    """
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created_sec = process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return psutil.pid_exists(pid) if pid > 0 else False
    if started_at is None:
        return True
    return created_sec <= started_at.timestamp() + START_TIME_SLACK_SEC


def record_from_row(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        spec=protocol.JobSpec.from_json(row["spec_json"]),
        status=JobStatus(row["status"]),
        stage=row["stage"],
        progress=row["progress"],
        eta_sec=row["eta_sec"],
        outputs=json.loads(row["outputs_json"]),
        error_code=row["error_code"],
        error_message=row["error_message"],
        log_tail=row["log_tail"],
        engine_pid=row["engine_pid"],
        attempts=row["attempts"],
        started_at=parse_time(row["started_at"]),
        queue_order=row["queue_order"],
        warnings=tuple(
            JobWarning(str(entry.get("message", "")), str(entry.get("path") or ""))
            for entry in current_warnings(row["warnings_json"], row["attempts"])
        ),
        summary=_current_summary(row["summary_json"], row["attempts"]),
    )


def current_warnings(text: str, attempt: int) -> list[dict[str, Any]]:
    """The entries of warnings_json that belong to attempt.

    Retry leaves the column alone, so an earlier attempt's entries stay until the
    next warning; they are ignored. A damaged value reads as no warnings.
    """
    entries = _load_json(text)
    if not isinstance(entries, list):
        return []
    return [
        entry
        for entry in entries
        if isinstance(entry, dict) and entry.get("attempt") == attempt
    ]


def _current_summary(text: str, attempt: int) -> dict[str, Any]:
    stored = _load_json(text)
    if not isinstance(stored, dict) or stored.get("attempt") != attempt:
        return {}
    summary = stored.get("summary")
    return summary if isinstance(summary, dict) else {}


def _load_json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None
