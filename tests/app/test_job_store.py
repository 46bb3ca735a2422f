"""The job store keeps the queue and its history through crashes, reopens and damage."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from app import job_records, job_schema
from app.job_records import (
    STATUSES,
    IllegalTransitionError,
    JobNotFoundError,
    JobStatus,
    QueueFullError,
    StoreVersionError,
)
from app.job_schema import SCHEMA_VERSION
from app.job_store import INTERRUPTED_MESSAGE, MAX_WAITING, JobStore
from engine import protocol

SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]


def make_spec(number: int) -> protocol.JobSpec:
    return protocol.JobSpec(
        clips=[f"/videos/clip-{number}.mp4"],
        music="/music/song.mp3",
        output=f"/out/montage-{number}.mp4",
        seed=number,
    )


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / job_schema.STORE_FILE_NAME


@pytest.fixture
def store(store_path: Path):
    with JobStore(store_path) as opened:
        yield opened


def add_running(store: JobStore, number: int, pid: int) -> int:
    job_id = store.add(make_spec(number))
    store.mark_running(job_id, pid)
    return job_id


# Queue order and listing


def test_waiting_jobs_come_out_first_in_first_out(store: JobStore):
    ids = [store.add(make_spec(number)) for number in range(3)]

    taken = []
    while (job := store.next_waiting()) is not None:
        taken.append(job.id)
        store.mark_running(job.id, os.getpid())

    assert taken == ids


def test_a_retried_job_waits_behind_those_already_queued(store: JobStore):
    first = add_running(store, 0, os.getpid())
    second = store.add(make_spec(1))
    store.mark_failed(first, "render_failed", "The encoder stopped.", "log")

    store.retry(first)

    assert store.next_waiting().id == second


def test_list_jobs_is_newest_first_with_specs_parsed(store: JobStore):
    ids = [store.add(make_spec(number)) for number in range(3)]

    jobs = store.list_jobs()

    assert [job.id for job in jobs] == ids[::-1]
    assert jobs[-1].spec == make_spec(0)
    assert jobs[-1].created_at.tzinfo is not None


# Transitions


def test_a_job_runs_from_waiting_to_finished(store: JobStore):
    job_id = store.add(make_spec(0))
    new = store.get(job_id)
    assert (new.status, new.attempts, new.progress) == (JobStatus.WAITING, 1, 0.0)

    store.mark_running(job_id, 4242)
    assert store.update_progress(job_id, "render", 0.5, 12.0)
    running = store.get(job_id)
    assert (running.status, running.engine_pid) == (JobStatus.RUNNING, 4242)
    assert (running.stage, running.progress, running.eta_sec) == ("render", 0.5, 12.0)
    assert running.started_at is not None

    store.mark_finished(job_id, {"video": "/out/montage-0.mp4"})
    finished = store.get(job_id)
    assert finished.status == JobStatus.FINISHED
    assert finished.outputs == {"video": "/out/montage-0.mp4"}
    assert (finished.progress, finished.eta_sec, finished.engine_pid) == (
        1.0,
        None,
        None,
    )
    assert finished.updated_at >= finished.created_at


def test_a_failed_job_keeps_its_error_until_retried(store: JobStore):
    job_id = add_running(store, 0, 4242)

    store.mark_failed(job_id, "disk_full", "The disk is full.", "line 1\nline 2")
    failed = store.get(job_id)
    assert (failed.status, failed.error_code) == (JobStatus.FAILED, "disk_full")
    assert (failed.error_message, failed.log_tail) == (
        "The disk is full.",
        "line 1\nline 2",
    )

    store.retry(job_id)
    retried = store.get(job_id)
    assert (retried.status, retried.attempts) == (JobStatus.WAITING, 2)
    assert (retried.error_code, retried.error_message, retried.log_tail) == (
        None,
        None,
        "",
    )


@pytest.mark.parametrize("start", ["waiting", "running"])
def test_waiting_and_running_jobs_can_be_cancelled_then_retried(
    store: JobStore, start: str
):
    job_id = store.add(make_spec(0))
    if start == "running":
        store.mark_running(job_id, 4242)

    store.mark_cancelled(job_id)
    assert store.get(job_id).status == JobStatus.CANCELLED
    store.retry(job_id)
    assert store.get(job_id).status == JobStatus.WAITING


def test_remove_deletes_any_job_but_a_running_one(store: JobStore):
    waiting = store.add(make_spec(0))
    running = add_running(store, 1, 4242)

    store.remove(waiting)
    with pytest.raises(IllegalTransitionError, match="cancel it"):
        store.remove(running)

    assert [job.id for job in store.list_jobs()] == [running]
    with pytest.raises(JobNotFoundError):
        store.get(waiting)


ILLEGAL = {
    "waiting": ["finish", "retry", "export"],
    "running": ["run", "retry", "export"],
    "finished": ["run", "finish", "fail", "cancel", "retry"],
    "failed": ["run", "finish", "fail", "cancel", "export"],
    "cancelled": ["run", "finish", "fail", "cancel", "export"],
}


def put_in(store: JobStore, status: str) -> int:
    job_id = store.add(make_spec(0))
    if status != "waiting":
        store.mark_running(job_id, 4242)
    if status == "finished":
        store.mark_finished(job_id, {})
    elif status == "failed":
        store.mark_failed(job_id, "internal", "Broken.", "")
    elif status == "cancelled":
        store.mark_cancelled(job_id)
    return job_id


def apply_change(store: JobStore, change: str, job_id: int) -> None:
    if change == "run":
        store.mark_running(job_id, 4242)
    elif change == "finish":
        store.mark_finished(job_id, {})
    elif change == "fail":
        store.mark_failed(job_id, "internal", "Broken.", "")
    elif change == "cancel":
        store.mark_cancelled(job_id)
    elif change == "export":
        store.add_outputs(job_id, {"edl": "/out/montage-0.edl"})
    else:
        store.retry(job_id)


@pytest.mark.parametrize(
    ("status", "change"),
    [(status, change) for status, changes in ILLEGAL.items() for change in changes],
)
def test_illegal_transitions_raise_and_change_nothing(
    store: JobStore, status: str, change: str
):
    job_id = put_in(store, status)
    before = store.get(job_id)

    with pytest.raises(IllegalTransitionError, match=f"Job {job_id} is {status}"):
        apply_change(store, change, job_id)

    assert store.get(job_id) == before


def test_progress_for_a_job_that_is_not_running_is_ignored(store: JobStore):
    job_id = store.add(make_spec(0))

    assert not store.update_progress(job_id, "render", 0.5, None)
    assert store.get(job_id).progress == 0.0


def test_an_unknown_job_id_raises_not_found(store: JobStore):
    with pytest.raises(JobNotFoundError, match="no job 99"):
        store.mark_running(99, 4242)
    with pytest.raises(LookupError):
        store.get(99)


# Persistence and settings


def test_history_survives_reopening(store_path: Path):
    with JobStore(store_path) as first:
        finished = add_running(first, 0, 4242)
        first.mark_finished(finished, {"video": "/out/montage-0.mp4"})
        waiting = first.add(make_spec(1))

    with JobStore(store_path) as second:
        assert [job.id for job in second.list_jobs()] == [waiting, finished]
        assert second.get(finished).outputs == {"video": "/out/montage-0.mp4"}
        assert second.recovered_from is None


def test_an_export_joins_the_outputs_and_survives_reopening(store_path: Path):
    video, otio = "/out/montage-0.mp4", "/out/montage-0.otio"
    with JobStore(store_path) as first:
        job_id = add_running(first, 0, 4242)
        first.mark_finished(job_id, {"video": video, "otio": otio})
        first.add_outputs(job_id, {"edl": "/out/montage-0.edl"})
        first.add_outputs(job_id, {"edl": "/out/montage-0.edl", "csv": "/o/m.csv"})

    with JobStore(store_path) as second:
        outputs = second.get(job_id).outputs
    assert outputs == {
        "video": video,
        "otio": otio,
        "edl": "/out/montage-0.edl",
        "csv": "/o/m.csv",
    }


def test_the_database_is_in_wal_mode_with_a_busy_timeout(store_path: Path):
    JobStore(store_path).close()

    connection = sqlite3.connect(store_path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        connection.close()
    with JobStore(store_path) as store:
        settings_of = store._connection.execute
        assert settings_of("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert settings_of("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_the_default_path_is_in_the_app_data_folder(monkeypatch):
    monkeypatch.delenv(job_schema.DATA_DIR_ENV, raising=False)
    path = job_schema.default_store_path()

    assert path.name == "jobs.sqlite3"
    assert "montage-ai" in path.parent.name


def test_the_data_folder_can_be_set_in_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(job_schema.DATA_DIR_ENV, str(tmp_path / "elsewhere"))

    assert job_schema.default_store_path() == tmp_path / "elsewhere" / "jobs.sqlite3"


def test_a_database_from_a_newer_app_is_left_alone(store_path: Path):
    JobStore(store_path).close()
    connection = sqlite3.connect(store_path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()

    with pytest.raises(StoreVersionError, match="newer Montage AI"):
        JobStore(store_path)

    assert store_path.exists()
    assert list(store_path.parent.glob("*.damaged-*")) == []


def test_a_locked_database_is_not_taken_for_damage():
    locked = sqlite3.OperationalError("database is locked")

    assert not job_schema.is_damage(locked)


# Recovery after a crash


def test_recovery_interrupts_a_job_whose_engine_died(store: JobStore):
    engine = subprocess.Popen(SLEEPER)
    job_id = add_running(store, 0, engine.pid)
    engine.kill()
    engine.wait(timeout=10)
    waiting = store.add(make_spec(1))

    assert store.recover_after_crash() == [job_id]

    interrupted = store.get(job_id)
    assert interrupted.status == JobStatus.INTERRUPTED
    assert interrupted.error_message == INTERRUPTED_MESSAGE
    assert interrupted.engine_pid is None
    assert store.get(waiting).status == JobStatus.WAITING
    store.retry(job_id)
    assert store.get(job_id).status == JobStatus.WAITING


def test_recovery_leaves_a_job_whose_engine_still_runs(store: JobStore):
    engine = subprocess.Popen(SLEEPER)
    try:
        job_id = add_running(store, 0, engine.pid)

        assert store.recover_after_crash() == []

        assert store.get(job_id).status == JobStatus.RUNNING
    finally:
        engine.kill()
        engine.wait(timeout=10)


def test_a_reused_pid_does_not_count_as_the_engine():
    # After a reboot the pid may name a younger, unrelated process.
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)

    assert job_records.is_process_alive(os.getpid(), None)
    assert not job_records.is_process_alive(os.getpid(), long_ago)


# Sharing one file


def add_many(path: Path, first_number: int, count: int, ids: list[int]) -> None:
    with JobStore(path) as store:
        for number in range(first_number, first_number + count):
            ids.append(store.add(make_spec(number)))


def test_two_stores_in_two_threads_add_every_job(store_path: Path):
    JobStore(store_path).close()
    ids: list[int] = []
    errors: list[BaseException] = []

    def worker(first_number: int) -> None:
        try:
            add_many(store_path, first_number, 50, ids)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n * 50,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(set(ids)) == 100
    with JobStore(store_path) as store:
        seeds = {job.spec.seed for job in store.list_jobs()}
    assert seeds == set(range(100))


ADDER = """
import sys
from pathlib import Path
from tests.app.test_job_store import add_many
add_many(Path(sys.argv[1]), int(sys.argv[2]), 50, [])
"""


def test_two_stores_in_two_processes_add_every_job(store_path: Path):
    JobStore(store_path).close()
    root = Path(__file__).parents[2]
    adders = [
        subprocess.Popen(
            [sys.executable, "-c", ADDER, str(store_path), str(n * 50)],
            cwd=root,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    results = [(adder.wait(timeout=60), adder.stderr.read()) for adder in adders]
    for adder in adders:
        adder.stderr.close()

    assert results == [(0, ""), (0, "")]
    with JobStore(store_path) as store:
        jobs = store.list_jobs()
    assert len({job.id for job in jobs}) == 100
    assert {job.spec.seed for job in jobs} == set(range(100))


# Damage


def test_a_file_of_random_bytes_is_moved_aside(store_path: Path):
    store_path.parent.mkdir(parents=True)
    garbage = bytes(range(256)) * 64
    store_path.write_bytes(garbage)

    with JobStore(store_path) as store:
        assert store.recovered_from is not None
        assert store.recovered_from.name.startswith("jobs.sqlite3.damaged-")
        assert store.recovered_from.read_bytes() == garbage
        assert store.list_jobs() == []
        job_id = store.add(make_spec(0))

    with JobStore(store_path) as reopened:
        assert reopened.recovered_from is None
        assert [job.id for job in reopened.list_jobs()] == [job_id]


def write_history(path: Path, count: int) -> None:
    with JobStore(path) as store:
        for number in range(count):
            job_id = add_running(store, number, 4242)
            store.mark_failed(job_id, "internal", "Broken. " * 40, "log line\n" * 40)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_a_truncated_database_opens_or_is_moved_aside(
    tmp_path: Path, store_path: Path, fraction: float
):
    whole = tmp_path / "whole.sqlite3"
    write_history(whole, 150)
    data = whole.read_bytes()
    store_path.parent.mkdir(parents=True)
    store_path.write_bytes(data[: int(len(data) * fraction)])

    with JobStore(store_path) as store:
        jobs = store.list_jobs()
        if store.recovered_from is None:
            assert all(job.status in STATUSES for job in jobs)
        else:
            assert jobs == []
            assert store.recovered_from.stat().st_size > 0
        store.add(make_spec(0))


def test_a_damaged_page_is_found_by_the_integrity_check(
    tmp_path: Path, store_path: Path
):
    whole = tmp_path / "whole.sqlite3"
    write_history(whole, 150)
    data = bytearray(whole.read_bytes())
    # Overwrite a page in the middle of the table's b-tree, keeping the header.
    page_size = 4096
    middle = (len(data) // page_size // 2) * page_size
    data[middle : middle + page_size] = b"\xff" * page_size
    store_path.parent.mkdir(parents=True)
    store_path.write_bytes(bytes(data))

    with JobStore(store_path) as store:
        assert store.recovered_from is not None
        assert store.list_jobs() == []


# The bounded queue


def test_the_queue_refuses_more_than_its_limit(store: JobStore):
    for number in range(MAX_WAITING):
        store.add(make_spec(number))

    with pytest.raises(QueueFullError, match=f"{MAX_WAITING} jobs are already waiting"):
        store.add(make_spec(MAX_WAITING))

    assert store.count_waiting() == MAX_WAITING
    first = store.next_waiting().id
    store.mark_running(first, 4242)
    store.mark_failed(first, "internal", "Broken.", "")
    store.add(make_spec(MAX_WAITING))
    with pytest.raises(ValueError, match="remove waiting jobs"):
        store.retry(first)


# Any sequence of operations


ALIVE_PID = 1001
DEAD_PID = 1002
ALLOWED_FROM = {
    "run": {"waiting"},
    "finish": {"running"},
    "fail": {"waiting", "running"},
    "cancel": {"waiting", "running"},
    "retry": {"failed", "cancelled", "interrupted"},
    "remove": set(STATUSES) - {"running"},
}
STATUS_AFTER = {
    "run": "running",
    "finish": "finished",
    "fail": "failed",
    "cancel": "cancelled",
    "retry": "waiting",
}


class JobStoreMachine(RuleBasedStateMachine):
    """Random operations against a model of each job's status."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="job-store-")
        self.store = JobStore(Path(self.folder) / "jobs.sqlite3")
        self.model: dict[int, str] = {}
        self.pids: dict[int, int] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def pick(self, index: int) -> int:
        ids = sorted(self.model)
        return ids[index % len(ids)] if ids else 1

    @rule(number=st.integers(0, 1000))
    def add(self, number: int) -> None:
        self.model[self.store.add(make_spec(number))] = "waiting"

    @rule(
        change=st.sampled_from(sorted(ALLOWED_FROM)),
        index=st.integers(0, 50),
        pid=st.sampled_from([ALIVE_PID, DEAD_PID]),
    )
    def change(self, change: str, index: int, pid: int) -> None:
        job_id = self.pick(index)
        status = self.model.get(job_id)
        if status is None:
            with pytest.raises(JobNotFoundError):
                self.apply(change, job_id, pid)
        elif status not in ALLOWED_FROM[change]:
            with pytest.raises(IllegalTransitionError):
                self.apply(change, job_id, pid)
        else:
            self.apply(change, job_id, pid)
            if change == "remove":
                del self.model[job_id]
            else:
                self.model[job_id] = STATUS_AFTER[change]
                self.pids[job_id] = pid

    def apply(self, change: str, job_id: int, pid: int) -> None:
        if change == "run":
            self.store.mark_running(job_id, pid)
        elif change == "remove":
            self.store.remove(job_id)
        else:
            apply_change(self.store, change, job_id)

    @rule(index=st.integers(0, 50), progress=st.floats(-1, 2))
    def progress(self, index: int, progress: float) -> None:
        job_id = self.pick(index)
        updated = self.store.update_progress(job_id, "render", progress, None)
        assert updated == (self.model.get(job_id) == "running")

    @rule()
    def recover(self) -> None:
        lost = self.store.recover_after_crash(lambda pid, _: pid == ALIVE_PID)
        for job_id in lost:
            assert self.pids[job_id] == DEAD_PID
            self.model[job_id] = "interrupted"

    @invariant()
    def statuses_match_the_model(self) -> None:
        rows = self.store._connection.execute("SELECT id, status FROM jobs").fetchall()
        assert {row["status"] for row in rows} <= set(STATUSES)
        assert {row["id"]: row["status"] for row in rows} == self.model
        assert all(0.0 <= job.progress <= 1.0 for job in self.store.list_jobs())


JobStoreMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None
)
test_any_sequence_of_operations_keeps_statuses_valid = JobStoreMachine.TestCase
