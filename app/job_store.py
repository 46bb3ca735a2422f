"""The render queue and its history, kept in SQLite so that no job is ever lost.

Standard library and psutil only, no Qt: the window, a worker thread or a test
can use it. Several app windows may share one database file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from app.job_records import (
    RETRYABLE,
    IllegalTransitionError,
    JobNotFoundError,
    JobRecord,
    JobStatus,
    QueueFullError,
    StoreBusyError,
    current_warnings,
    is_process_alive,
    parse_time,
    record_from_row,
    utc_now,
)
from app.job_schema import check_integrity, is_damage, migrate, move_aside
from engine import protocol

log = logging.getLogger(__name__)

MAX_WAITING = 100
# Warnings kept per attempt of a job; an engine may warn about every clip.
MAX_WARNINGS = 100
# How long a write waits for another window's transaction before giving up.
BUSY_TIMEOUT_SEC = 10.0
INTERRUPTED_MESSAGE = (
    "The app or the machine stopped while this render was running. "
    "Run it again with Retry."
)


class JobStore:
    """The jobs table of one SQLite file; every state change is one transaction.

    A damaged file is moved aside and a fresh one started; `recovered_from` then
    names where the old one went, so the window can say so.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.recovered_from: Path | None = None
        self._lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = self._open_or_recover()

    # Opening

    def _open_or_recover(self) -> sqlite3.Connection:
        try:
            return self._open()
        except sqlite3.DatabaseError as error:
            if not is_damage(error):
                raise
            log.warning(
                "Job store %s is damaged (%s); moving it aside", self.path, error
            )
        self.recovered_from = move_aside(self.path)
        return self._open()

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_SEC,
            isolation_level=None,
            check_same_thread=False,
        )
        connection.row_factory = sqlite3.Row
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                log.warning(
                    "Job store %s is in %s mode, not WAL: the file system may not "
                    "support it; writes from two windows will wait longer",
                    self.path,
                    mode,
                )
            connection.execute("PRAGMA synchronous=NORMAL")
            check_integrity(connection)
            migrate(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Reading

    def get(self, job_id: int) -> JobRecord:
        """The job's record; JobNotFoundError if there is none."""
        with self._lock:
            row = self._fetch(job_id, self._connection)
        return record_from_row(row)

    def list_jobs(self) -> list[JobRecord]:
        """Every job, newest first. A row whose spec no longer parses is skipped."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT * FROM jobs ORDER BY id DESC"
            ).fetchall()
        records = []
        for row in rows:
            try:
                records.append(record_from_row(row))
            except protocol.JobSpecError as error:
                log.warning("Job %d cannot be read back: %s", row["id"], error)
        return records

    def outside_changes(self) -> int:
        """A number that changes whenever another connection (another window)
        has committed to the database since; our own writes leave it alone."""
        with self._lock:
            return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def next_waiting(self) -> JobRecord | None:
        """The job that has waited longest (a retried job waits at the back)."""
        with self._lock:
            row = self._connection.execute(
                "SELECT * FROM jobs WHERE status = ? ORDER BY queue_order, id LIMIT 1",
                (JobStatus.WAITING,),
            ).fetchone()
        return None if row is None else record_from_row(row)

    def count_waiting(self) -> int:
        with self._lock:
            return self._count_waiting(self._connection)

    # Changing state: each method is one transaction

    def add(self, spec: protocol.JobSpec) -> int:
        """Queue a job; QueueFullError when MAX_WAITING jobs already wait."""
        spec_json = spec.to_json()
        with self._write() as connection:
            self._check_room(connection)
            now = utc_now()
            cursor = connection.execute(
                "INSERT INTO jobs (created_at, updated_at, spec_json, status,"
                " queue_order) VALUES (?, ?, ?, ?, ?)",
                (now, now, spec_json, JobStatus.WAITING, _next_order(connection)),
            )
            job_id = cursor.lastrowid
        assert job_id is not None
        log.info("Job %d queued: %s", job_id, spec.output)
        return job_id

    def mark_running(self, job_id: int, pid: int) -> None:
        """A waiting job's engine has started; raises if another window took it."""
        self._transition(
            job_id,
            (JobStatus.WAITING,),
            "status = 'running', engine_pid = ?, started_at = ?, stage = '',"
            " progress = 0.0, eta_sec = NULL",
            (pid, utc_now()),
        )
        log.info("Job %d running as process %d", job_id, pid)

    def update_progress(
        self,
        job_id: int,
        stage: str,
        progress: float,
        eta_sec: float | None,
        attempt: int | None = None,
    ) -> bool:
        """Record a running job's progress; False (no change) if it is not running,
        or not in attempt (when given: it was retried since)."""
        progress = min(1.0, max(0.0, progress))
        with self._write() as connection:
            cursor = connection.execute(
                "UPDATE jobs SET stage = ?, progress = ?, eta_sec = ?, updated_at = ?"
                " WHERE id = ? AND status = 'running' AND attempts = ifnull(?, attempts)",
                (stage, progress, eta_sec, utc_now(), job_id, attempt),
            )
        return cursor.rowcount == 1

    def mark_finished(
        self, job_id: int, outputs: dict[str, str], attempt: int | None = None
    ) -> None:
        """A running job's engine finished (in attempt, when given)."""
        self._transition(
            job_id,
            (JobStatus.RUNNING,),
            "status = 'finished', outputs_json = ?, progress = 1.0, eta_sec = NULL,"
            " engine_pid = NULL",
            (json.dumps(outputs, ensure_ascii=False),),
            attempt,
        )
        log.info("Job %d finished", job_id)

    def add_outputs(self, job_id: int, outputs: dict[str, str]) -> None:
        """Record more files of a finished job (a timeline export), by kind.

        A kind already there is replaced; the others are kept.
        """
        with self._write() as connection:
            row = self._fetch(job_id, connection)
            if row["status"] != JobStatus.FINISHED:
                raise IllegalTransitionError(
                    f"Job {job_id} is {row['status']}; only a finished job's "
                    "timeline can be exported."
                )
            merged = json.loads(row["outputs_json"]) | outputs
            connection.execute(
                "UPDATE jobs SET outputs_json = ?, updated_at = ? WHERE id = ?",
                (json.dumps(merged, ensure_ascii=False), utc_now(), job_id),
            )
        log.info("Job %d: recorded %s", job_id, ", ".join(outputs.values()))

    def add_warning(
        self, job_id: int, attempt: int, message: str, path: str = ""
    ) -> bool:
        """Keep a warning of a running job's engine; False (no change) if the job
        is not running in attempt, or has MAX_WARNINGS already."""
        with self._write() as connection:
            row = self._running_row(job_id, attempt, connection)
            if row is None:
                return False
            warnings = current_warnings(row["warnings_json"], attempt)
            if len(warnings) >= MAX_WARNINGS:
                log.info("Job %d: warning not kept (%d already)", job_id, MAX_WARNINGS)
                return False
            warnings.append({"attempt": attempt, "message": message, "path": path})
            connection.execute(
                "UPDATE jobs SET warnings_json = ?, updated_at = ? WHERE id = ?",
                (json.dumps(warnings, ensure_ascii=False), utc_now(), job_id),
            )
        return True

    def add_summary(self, job_id: int, attempt: int, summary: dict[str, Any]) -> bool:
        """Keep the engine's summary of a running job, before it is marked
        finished; False (no change) if the job is not running in attempt."""
        stored = json.dumps(
            {"attempt": attempt, "summary": summary}, ensure_ascii=False, default=str
        )
        with self._write() as connection:
            if self._running_row(job_id, attempt, connection) is None:
                return False
            connection.execute(
                "UPDATE jobs SET summary_json = ?, updated_at = ? WHERE id = ?",
                (stored, utc_now(), job_id),
            )
        return True

    def mark_failed(
        self,
        job_id: int,
        code: str,
        message: str,
        log_tail: str,
        attempt: int | None = None,
    ) -> None:
        """A running job failed, or a waiting one could not be started."""
        self._transition(
            job_id,
            (JobStatus.WAITING, JobStatus.RUNNING),
            "status = 'failed', error_code = ?, error_message = ?, log_tail = ?,"
            " eta_sec = NULL, engine_pid = NULL",
            (code, message, log_tail),
            attempt,
        )
        log.info("Job %d failed: %s", job_id, code)

    def mark_cancelled(self, job_id: int, attempt: int | None = None) -> None:
        self._transition(
            job_id,
            (JobStatus.WAITING, JobStatus.RUNNING),
            "status = 'cancelled', eta_sec = NULL, engine_pid = NULL",
            (),
            attempt,
        )
        log.info("Job %d cancelled", job_id)

    def retry(self, job_id: int) -> None:
        """Queue a failed, cancelled or interrupted job again, at the back."""
        with self._write() as connection:
            self._check_room(connection)
            self._transition_in(
                connection,
                job_id,
                RETRYABLE,
                "status = 'waiting', attempts = attempts + 1, error_code = NULL,"
                " error_message = NULL, log_tail = '', stage = '', progress = 0.0,"
                " eta_sec = NULL, engine_pid = NULL, started_at = NULL,"
                " outputs_json = '{}', queue_order = ?",
                (_next_order(connection),),
            )
        log.info("Job %d queued again", job_id)

    def remove(self, job_id: int) -> None:
        """Delete a job from the list; a running one must be cancelled first."""
        with self._write() as connection:
            status = self._fetch(job_id, connection)["status"]
            if status == JobStatus.RUNNING:
                raise IllegalTransitionError(
                    f"Job {job_id} is running: cancel it before removing it."
                )
            connection.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        log.info("Job %d removed", job_id)

    def recover_after_crash(
        self, is_alive: Callable[[int, datetime | None], bool] = is_process_alive
    ) -> list[int]:
        """Mark running jobs whose engine is gone as interrupted; return their ids.

        For start-up. A job whose engine still runs (another window's) stays.
        """
        with self._write() as connection:
            rows = connection.execute(
                "SELECT id, engine_pid, started_at FROM jobs WHERE status = 'running'"
            ).fetchall()
            lost = [
                row["id"]
                for row in rows
                if row["engine_pid"] is None
                or not is_alive(row["engine_pid"], parse_time(row["started_at"]))
            ]
            for job_id in lost:
                connection.execute(
                    "UPDATE jobs SET status = 'interrupted', error_code = NULL,"
                    " error_message = ?, eta_sec = NULL, engine_pid = NULL,"
                    " updated_at = ? WHERE id = ?",
                    (INTERRUPTED_MESSAGE, utc_now(), job_id),
                )
        if lost:
            log.warning("Jobs interrupted by a stop of the app: %s", lost)
        return lost

    # Plumbing

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once so that a read-then-write by
        another window cannot slip in between (and no upgrade can deadlock)."""
        with self._lock:
            connection = self._connection
            try:
                with connection:
                    connection.execute("BEGIN IMMEDIATE")
                    yield connection
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                raise StoreBusyError(
                    f"The job list {self.path} stayed in use by another window for "
                    f"{BUSY_TIMEOUT_SEC:g} s. Try again, or close the other window."
                ) from error

    def _transition(
        self,
        job_id: int,
        allowed: tuple[JobStatus, ...],
        assignments: str,
        values: tuple[Any, ...],
        attempt: int | None = None,
    ) -> None:
        with self._write() as connection:
            self._transition_in(
                connection, job_id, allowed, assignments, values, attempt
            )

    def _transition_in(
        self,
        connection: sqlite3.Connection,
        job_id: int,
        allowed: tuple[JobStatus, ...],
        assignments: str,
        values: tuple[Any, ...],
        attempt: int | None = None,
    ) -> None:
        """Change a job whose status is allowed (and, with attempt, which has not
        been retried since); IllegalTransitionError otherwise."""
        row = self._fetch(job_id, connection)
        status = row["status"]
        if status not in allowed:
            raise IllegalTransitionError(
                f"Job {job_id} is {status}; this needs it to be {' or '.join(allowed)}."
            )
        if attempt is not None and row["attempts"] != attempt:
            raise IllegalTransitionError(
                f"Job {job_id} was retried (attempt {row['attempts']}); this is the "
                f"outcome of attempt {attempt}."
            )
        connection.execute(
            f"UPDATE jobs SET {assignments}, updated_at = ? WHERE id = ?",
            (*values, utc_now(), job_id),
        )

    def _fetch(self, job_id: int, connection: sqlite3.Connection) -> sqlite3.Row:
        row: sqlite3.Row | None = connection.execute(
            "SELECT * FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise JobNotFoundError(
                f"There is no job {job_id}; it may have been removed."
            )
        return row

    def _running_row(
        self, job_id: int, attempt: int, connection: sqlite3.Connection
    ) -> sqlite3.Row | None:
        row: sqlite3.Row | None = connection.execute(
            "SELECT * FROM jobs WHERE id = ? AND status = 'running' AND attempts = ?",
            (job_id, attempt),
        ).fetchone()
        return row

    def _count_waiting(self, connection: sqlite3.Connection) -> int:
        count: int = connection.execute(
            "SELECT COUNT(*) FROM jobs WHERE status = 'waiting'"
        ).fetchone()[0]
        return count

    def _check_room(self, connection: sqlite3.Connection) -> None:
        if self._count_waiting(connection) >= MAX_WAITING:
            raise QueueFullError(
                f"{MAX_WAITING} jobs are already waiting, the most the queue holds. "
                "Wait for some to finish, or remove waiting jobs, then add this one."
            )


def _next_order(connection: sqlite3.Connection) -> int:
    order: int = connection.execute(
        "SELECT COALESCE(MAX(queue_order), 0) + 1 FROM jobs"
    ).fetchone()[0]
    return order
