"""The render queue and its history, kept in SQLite so that no job is ever lost.

Standard library and psutil only, no Qt: the window, a worker thread or a test
can use it. Several app windows may share one database file.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs
import psutil

from engine import protocol

log = logging.getLogger(__name__)

APP_NAME = "montage-ai"
STORE_FILE_NAME = "jobs.sqlite3"
# Points the job store (and job files) elsewhere: tests, portable installs.
DATA_DIR_ENV = "MONTAGE_AI_DATA_DIR"
SCHEMA_VERSION = 2
MAX_WAITING = 100
# Warnings kept per attempt of a job; an engine may warn about every clip.
MAX_WARNINGS = 100
# How long a write waits for another window's transaction before giving up.
BUSY_TIMEOUT_SEC = 10.0
# psutil derives a process's start time from the boot time, in whole seconds.
START_TIME_SLACK_SEC = 2.0
INTERRUPTED_MESSAGE = (
    "The app or the machine stopped while this render was running. "
    "Run it again with Retry."
)
# SQLite's primary result codes for a file that is damaged or is not a database.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


class DamagedDatabaseError(sqlite3.DatabaseError):
    """The file opened, but SQLite's integrity check found faults in it."""


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


def data_dir() -> Path:
    """The app's data folder: $MONTAGE_AI_DATA_DIR, else the platform's."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_store_path() -> Path:
    """jobs.sqlite3 in the app's data folder."""
    return data_dir() / STORE_FILE_NAME


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# Each entry takes the schema from its index to the next version.
_CREATE_JOBS = f"""
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN {STATUSES!r}),
    stage TEXT NOT NULL DEFAULT '',
    progress REAL NOT NULL DEFAULT 0.0,
    eta_sec REAL,
    outputs_json TEXT NOT NULL DEFAULT '{{}}',
    error_code TEXT,
    error_message TEXT,
    log_tail TEXT NOT NULL DEFAULT '',
    engine_pid INTEGER,
    attempts INTEGER NOT NULL DEFAULT 1,
    started_at TEXT,
    queue_order INTEGER NOT NULL DEFAULT 0
)"""
# Both hold JSON tagged with the attempt they belong to (see record_from_row).
_ADD_RESULTS = (
    "ALTER TABLE jobs ADD COLUMN warnings_json TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE jobs ADD COLUMN summary_json TEXT NOT NULL DEFAULT '{}'",
)
MIGRATIONS: list[tuple[str, ...]] = [
    (_CREATE_JOBS, "CREATE INDEX jobs_waiting ON jobs (status, queue_order)"),
    _ADD_RESULTS,
]
assert len(MIGRATIONS) == SCHEMA_VERSION


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the schema up to SCHEMA_VERSION in one transaction; return the version.

    Raises StoreVersionError for a database from a newer app, which is left as is.
    """
    with connection:
        connection.execute("BEGIN IMMEDIATE")
        version: int = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"The job list was saved by a newer Montage AI (schema {version}, "
                f"this one reads {SCHEMA_VERSION}). Update the app to see it."
            )
        for step in MIGRATIONS[version:]:
            for statement in step:
                connection.execute(statement)
        if version < SCHEMA_VERSION:
            log.info("Job store schema %d -> %d", version, SCHEMA_VERSION)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return SCHEMA_VERSION


def is_damage(error: sqlite3.DatabaseError) -> bool:
    """True for a damaged file or not a database; False for locks, I/O, etc."""
    if isinstance(error, DamagedDatabaseError):
        return True
    code = getattr(error, "sqlite_errorcode", 0)
    return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


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
            warnings = _current_warnings(row["warnings_json"], attempt)
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
                or not is_alive(row["engine_pid"], _parse_time(row["started_at"]))
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


def check_integrity(connection: sqlite3.Connection) -> None:
    """Raise DamagedDatabaseError unless SQLite's integrity check finds no fault."""
    rows = connection.execute("PRAGMA integrity_check").fetchall()
    problems = [row[0] for row in rows if row[0] != "ok"]
    if problems:
        raise DamagedDatabaseError(f"integrity check failed: {problems[:3]}")


def move_aside(path: Path) -> Path:
    """Rename a damaged database and its -wal and -shm files; return the new path.

    The pair keeps its suffixes, so `jobs.sqlite3.damaged-<time>` opens with its WAL.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        # Another window may have moved it already.
        with contextlib.suppress(FileNotFoundError):
            source.rename(target.with_name(target.name + suffix))
    log.warning("Damaged job store moved to %s; starting an empty one", target)
    return target


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
        started_at=_parse_time(row["started_at"]),
        queue_order=row["queue_order"],
        warnings=tuple(
            JobWarning(str(entry.get("message", "")), str(entry.get("path") or ""))
            for entry in _current_warnings(row["warnings_json"], row["attempts"])
        ),
        summary=_current_summary(row["summary_json"], row["attempts"]),
    )


def _current_warnings(text: str, attempt: int) -> list[dict[str, Any]]:
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


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _next_order(connection: sqlite3.Connection) -> int:
    order: int = connection.execute(
        "SELECT COALESCE(MAX(queue_order), 0) + 1 FROM jobs"
    ).fetchone()[0]
    return order
