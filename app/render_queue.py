"""The render queue: starts waiting jobs in order, at most N at once, each in its
own EngineProcess, and writes every change of state to the JobStore.

Memory is checked before a job starts and watched while it runs.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from app import memory
from app.engine_process import EngineCommand, EngineProcess, with_director_key
from app.job_records import JobRecord, JobStatus, JobStoreError
from app.job_store import JobStore
from app.qt_compat import emit_signal
from engine import protocol
from engine.temp_files import remove_stale_temp_files

log = logging.getLogger(__name__)

# What a call on the job store raises when it refuses or fails.
STORE_ERRORS = (JobStoreError, sqlite3.Error, OSError)

# Progress reaches the store at most this often per job; the window sees every event.
PROGRESS_WRITE_INTERVAL_SEC = 0.25
# How often a waiting queue looks again (for memory, or jobs another window added).
RECHECK_MS = 3000
# How often the job list is checked for another window's changes (cheap).
OUTSIDE_POLL_MS = 1000
# How often a running engine's memory is measured.
MEMORY_POLL_MS = 1000


def memory_limit_message(limit_mb: int, used_mb: float) -> str:
    return (
        f"The render used more than the {limit_mb} MB limit set in Settings "
        f"(it reached {used_mb:.0f} MB), so Montage AI stopped it. Choose preview "
        "quality, or raise the limit in Settings, and try again."
    )


def memory_wait_message(needed_mb: int, free_mb: float) -> str:
    return (
        f"Waiting for memory: this render needs about {needed_mb} MB and "
        f"{free_mb:.0f} MB are free. Close other programs, or choose preview quality."
    )


@dataclass
class RunningJob:
    """A job whose engine this window started, with what is not yet in the store."""

    job_id: int
    engine: EngineProcess
    # The store's attempt this engine renders: a retry elsewhere makes it stale.
    attempt: int = 1
    stage: str = "Starting the engine…"
    progress: float = 0.0
    eta_sec: float | None = None
    written_at: float = 0.0
    over_limit_mb: float | None = None


class RenderQueue(QObject):
    """Runs the store's waiting jobs through engine subprocesses.

    Every outcome goes to the store first, then out as job_changed; a store or
    engine error is logged and shown on the job, never raised into Qt.
    """

    job_changed = Signal(int)
    jobs_changed = Signal()

    def __init__(
        self,
        store: JobStore,
        jobs_dir: Path,
        engine_command: EngineCommand | None = None,
        renders_at_once: int = 1,
        memory_limit_mb: int = memory.DEFAULT_LIMIT_MB,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.renders_at_once = renders_at_once
        self.memory_limit_mb = memory_limit_mb
        # Given to each engine in its environment (see with_director_key).
        self.director_key = ""
        self._jobs_dir = jobs_dir
        self._engine_command = engine_command
        self._running: dict[int, RunningJob] = {}
        self._waiting_reasons: dict[int, str] = {}
        self._closing = False
        # What another window may change: the job list as last shown.
        self._seen_version = self._outside_changes()
        self._seen_records: dict[int, JobRecord] = {}
        self._recheck_timer = self._make_timer(RECHECK_MS, self.start_waiting_jobs)
        self._outside_timer = self._make_timer(OUTSIDE_POLL_MS, self._watch_outside)
        self._memory_timer = self._make_timer(MEMORY_POLL_MS, self._watch_memory)

    def _make_timer(self, interval_ms: int, slot: Callable[[], None]) -> QTimer:
        timer = QTimer(self)
        timer.setInterval(interval_ms)
        timer.timeout.connect(slot)
        timer.start()
        return timer

    # Reading

    def record(self, job_id: int) -> JobRecord:
        """The job as stored, with this window's unsaved progress laid over it."""
        record = self.store.get(job_id)
        running = self._running.get(job_id)
        if running is not None and record.status is JobStatus.RUNNING:
            return dataclasses.replace(
                record,
                stage=running.stage,
                progress=running.progress,
                eta_sec=running.eta_sec,
            )
        reason = self._waiting_reasons.get(job_id)
        if reason and record.status is JobStatus.WAITING:
            return dataclasses.replace(record, stage=reason)
        return record

    def records(self) -> list[JobRecord]:
        """Every job in queue order: the order they were queued in, a retried job
        at the back, which is the order the waiting ones run in."""
        stored = self.store.list_jobs()
        stored.sort(key=lambda record: (record.queue_order, record.id))
        return [self.record(record.id) for record in stored]

    def summary(self, job_id: int) -> dict:
        """The engine's summary of the job's finished render, as stored, else {}."""
        try:
            return self.store.get(job_id).summary
        except (JobStoreError, sqlite3.Error):
            return {}

    def running_count(self) -> int:
        return len(self._running)

    def stderr_tail(self, job_id: int) -> str:
        running = self._running.get(job_id)
        return running.engine.stderr_tail() if running is not None else ""

    def engine_process_id(self, job_id: int) -> int | None:
        running = self._running.get(job_id)
        return running.engine.process_id() if running is not None else None

    # Actions

    def add(self, spec: protocol.JobSpec) -> int:
        """Queue a job and start it if there is room; raises JobStoreError."""
        job_id = self.store.add(spec)
        emit_signal(self.jobs_changed)
        self.start_waiting_jobs()
        return job_id

    def cancel(self, job_id: int) -> None:
        """Stop a running job (its outcome follows) or take a waiting one out."""
        running = self._running.get(job_id)
        if running is not None:
            running.stage = "Cancelling…"
            running.engine.cancel()
        else:
            self._change(job_id, lambda: self.store.mark_cancelled(job_id))
        emit_signal(self.job_changed, job_id)

    def retry(self, job_id: int) -> None:
        self._change(job_id, lambda: self.store.retry(job_id))
        emit_signal(self.job_changed, job_id)
        self.start_waiting_jobs()

    def remove(self, job_id: int) -> None:
        if job_id in self._running:
            return
        try:
            output = Path(self.store.get(job_id).spec.output).expanduser()
            self.store.remove(job_id)
        except STORE_ERRORS as error:
            log.warning("The job list refused a change: %s", error)
        else:
            # An engine killed outright (out of memory) left its hidden files.
            remove_stale_temp_files(output)
        self._waiting_reasons.pop(job_id, None)
        emit_signal(self.jobs_changed)

    def add_outputs(self, job_id: int, outputs: dict[str, str]) -> None:
        """Record files written later for a finished job (an export) and show them."""
        self._change(job_id, lambda: self.store.add_outputs(job_id, outputs))
        emit_signal(self.job_changed, job_id)

    def set_limits(self, renders_at_once: int, memory_limit_mb: int) -> None:
        self.renders_at_once = renders_at_once
        self.memory_limit_mb = memory_limit_mb
        self.start_waiting_jobs()

    def shutdown(self) -> None:
        """Stop every engine, for closing the app; their jobs become interrupted."""
        if self._closing:
            return
        self._closing = True
        self._recheck_timer.stop()
        self._outside_timer.stop()
        self._memory_timer.stop()
        for running in list(self._running.values()):
            running.engine.shutdown()
        self._running.clear()
        self._ok(self.store.recover_after_crash)

    # Scheduling

    def _watch_outside(self) -> None:
        """Show what another window did to the queue, and stop an engine of ours
        whose job it cancelled or retried."""
        version = self._outside_changes()
        if version != self._seen_version:
            self._seen_version = version
            self._show_outside_changes()

    def _show_outside_changes(self) -> None:
        """A new list when jobs came or went; else each job that changed, so the
        view keeps its selection."""
        try:
            records = {record.id: record for record in self.store.list_jobs()}
        except (JobStoreError, sqlite3.Error) as error:
            log.warning("Could not read the job list: %s", error)
            return
        seen, self._seen_records = self._seen_records, records
        self._stop_jobs_changed_elsewhere(records)
        if records.keys() != seen.keys():
            emit_signal(self.jobs_changed)
            return
        for job_id, record in records.items():
            if record != seen[job_id]:
                emit_signal(self.job_changed, job_id)

    def _stop_jobs_changed_elsewhere(self, records: dict[int, JobRecord]) -> None:
        for job_id, running in list(self._running.items()):
            record = records.get(job_id)
            if (
                record is not None
                and record.status is JobStatus.RUNNING
                and record.attempts == running.attempt
            ):
                continue
            # Its outcome, when it comes, is refused by the store (wrong attempt
            # or state) and the job shows as the other window left it.
            log.info("Job %d was cancelled, retried or removed elsewhere", job_id)
            running.stage = "Stopping: changed in another window…"
            running.engine.cancel()

    def _outside_changes(self) -> int | None:
        try:
            return self.store.outside_changes()
        except sqlite3.Error as error:
            log.warning("Could not read the job list's version: %s", error)
            return None

    def start_waiting_jobs(self) -> None:
        """Start the oldest waiting jobs while there is room and memory, in order."""
        while not self._closing and len(self._running) < self.renders_at_once:
            try:
                job = self.store.next_waiting()
            except (JobStoreError, sqlite3.Error) as error:
                log.warning("Could not read the waiting jobs: %s", error)
                return
            if job is None or job.id in self._running:
                # An engine of ours still ends an earlier attempt: after it.
                return
            needed_mb = memory.estimate_job_mb(job.spec)
            if needed_mb > self.memory_limit_mb:
                # It would be stopped at the limit: say so now, not after minutes.
                message = (
                    f"This render needs about {needed_mb} MB, more than the "
                    f"{self.memory_limit_mb} MB limit per render set in Settings. "
                    "Raise the limit, or choose preview quality, then press Retry."
                )
                self._mark_failed(job.id, protocol.ErrorCode.OUT_OF_MEMORY, message)
                continue
            if not self._memory_allows(job):
                return
            self._start(job)

    def _memory_allows(self, job: JobRecord) -> bool:
        needed_mb = memory.estimate_job_mb(job.spec)
        free_mb = memory.available_mb()
        if needed_mb <= free_mb:
            if self._waiting_reasons.pop(job.id, None) is not None:
                emit_signal(self.job_changed, job.id)
            return True
        reason = memory_wait_message(needed_mb, free_mb)
        if self._waiting_reasons.get(job.id) != reason:
            log.warning("Job %d waits for memory: %s", job.id, reason)
            self._waiting_reasons[job.id] = reason
            emit_signal(self.job_changed, job.id)
        return False

    def _start(self, job: JobRecord) -> None:
        command = with_director_key(self._engine_command, self.director_key)
        engine = EngineProcess(command, self)
        running = RunningJob(job.id, engine, job.attempts)
        self._running[job.id] = running
        self._connect(running)
        job_dir = self._jobs_dir / f"job-{job.id}-attempt-{job.attempts}"
        try:
            engine.start(job.spec, job_dir)
        except OSError as error:
            self._finish(running)
            message = (
                f"Could not write the job file in {job_dir}: {error}. Check that "
                "there is free disk space, then press Retry."
            )
            self._mark_failed(job.id, protocol.ErrorCode.OUTPUT_UNWRITABLE, message)
            return
        pid = engine.process_id()
        # Another window may take the same job first; then this engine goes.
        if (
            job.id in self._running
            and pid is not None
            and not self._ok(lambda: self.store.mark_running(job.id, pid))
        ):
            self._finish(running)
            running.engine.shutdown()
            return
        emit_signal(self.job_changed, job.id)

    def _connect(self, running: RunningJob) -> None:
        job_id, engine = running.job_id, running.engine
        engine.warning_raised.connect(
            lambda message, path: self._on_warning_raised(running, message, path)
        )
        engine.stage_changed.connect(
            lambda stage, message: self._on_stage_changed(job_id, message)
        )
        engine.progress_changed.connect(
            lambda overall, eta_sec: self._on_progress_changed(job_id, overall, eta_sec)
        )
        engine.render_finished.connect(
            lambda outputs, summary: self._on_render_finished(job_id, outputs, summary)
        )
        engine.render_failed.connect(
            lambda code, message: self._on_render_failed(job_id, code, message)
        )

    # Engine events

    def _on_warning_raised(self, running: RunningJob, message: str, path: str) -> None:
        if self._running.get(running.job_id) is not running:
            return
        job_id, attempt = running.job_id, running.attempt
        if self._ok(lambda: self.store.add_warning(job_id, attempt, message, path)):
            emit_signal(self.job_changed, job_id)

    def _on_stage_changed(self, job_id: int, message: str) -> None:
        running = self._running.get(job_id)
        if running is None:
            return
        running.stage = message
        self._write_progress(running)
        emit_signal(self.job_changed, job_id)

    def _on_progress_changed(
        self, job_id: int, overall: float, eta_sec: object
    ) -> None:
        running = self._running.get(job_id)
        if running is None:
            return
        running.progress = overall
        running.eta_sec = eta_sec if isinstance(eta_sec, float) else None
        if time.monotonic() - running.written_at >= PROGRESS_WRITE_INTERVAL_SEC:
            self._write_progress(running)
        emit_signal(self.job_changed, job_id)

    def _on_render_finished(self, job_id: int, outputs: dict, summary: dict) -> None:
        running = self._running.get(job_id)
        if running is None or self._closing:
            return
        # The summary first, so that the job never shows as finished without it.
        attempt = running.attempt
        self._ok(lambda: self.store.add_summary(job_id, attempt, dict(summary)))
        self._finish(running)
        paths = {str(kind): str(path) for kind, path in outputs.items()}
        self._change(
            job_id, lambda: self.store.mark_finished(job_id, paths, running.attempt)
        )
        emit_signal(self.job_changed, job_id)
        self.start_waiting_jobs()

    def _on_render_failed(self, job_id: int, code: str, message: str) -> None:
        running = self._running.get(job_id)
        if running is None or self._closing:
            return
        self._finish(running)
        if running.over_limit_mb is not None:
            code = protocol.ErrorCode.OUT_OF_MEMORY
            message = memory_limit_message(self.memory_limit_mb, running.over_limit_mb)
        if code == protocol.ErrorCode.CANCELLED:
            self._change(
                job_id, lambda: self.store.mark_cancelled(job_id, running.attempt)
            )
            emit_signal(self.job_changed, job_id)
        else:
            log_tail = running.engine.stderr_tail()
            self._mark_failed(job_id, code, message, log_tail, running.attempt)
        self.start_waiting_jobs()

    def _watch_memory(self) -> None:
        for running in list(self._running.values()):
            pid = running.engine.process_id()
            if pid is None or running.over_limit_mb is not None:
                continue
            used_mb = memory.process_tree_rss_mb(pid)
            if used_mb > self.memory_limit_mb:
                log.warning(
                    "Job %d uses %.0f MB, over the %d MB limit; stopping it",
                    running.job_id,
                    used_mb,
                    self.memory_limit_mb,
                )
                running.over_limit_mb = used_mb
                running.stage = "Stopping: over the memory limit…"
                running.engine.cancel()
                emit_signal(self.job_changed, running.job_id)

    # Helpers

    def _finish(self, running: RunningJob) -> None:
        self._running.pop(running.job_id, None)
        running.engine.deleteLater()

    def _write_progress(self, running: RunningJob) -> None:
        running.written_at = time.monotonic()
        self._ok(
            lambda: self.store.update_progress(
                running.job_id,
                running.stage,
                running.progress,
                running.eta_sec,
                running.attempt,
            )
        )

    def _mark_failed(
        self,
        job_id: int,
        code: str,
        message: str,
        log_tail: str = "",
        attempt: int | None = None,
    ) -> None:
        self._change(
            job_id,
            lambda: self.store.mark_failed(job_id, code, message, log_tail, attempt),
        )
        emit_signal(self.job_changed, job_id)

    def _change(self, job_id: int, change: Callable[[], object]) -> None:
        if not self._ok(change):
            # The store refused (another window got there first): show it as it is.
            emit_signal(self.jobs_changed)

    def _ok(self, action: Callable[[], object]) -> bool:
        """Run a store call; log and return False if the store refuses or fails."""
        try:
            action()
        except STORE_ERRORS as error:
            log.warning("The job list refused a change: %s", error)
            return False
        return True
