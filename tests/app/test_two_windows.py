"""Two windows on one job list: every job renders once, none is lost or corrupted."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.job_records import JobStatus
from app.job_store import JobStore
from app.render_queue import RenderQueue
from tests.app.queue_helpers import job_spec, status_is, statuses

JOBS = 8


@pytest.fixture
def two_windows(
    qtbot, tmp_path: Path, stub_command
) -> Iterator[tuple[list[JobStore], list[RenderQueue], Path]]:
    """Two stores and queues on one database, as two app windows have them."""
    log = tmp_path / "renders.log"
    command = stub_command("normal_run.jsonl", "--delay", "0.01", "--log", str(log))
    stores = [JobStore(tmp_path / "jobs.sqlite3") for _ in range(2)]
    queues = [
        RenderQueue(store, tmp_path / f"window-{number}", command, renders_at_once=2)
        for number, store in enumerate(stores)
    ]
    yield stores, queues, log
    for queue in queues:
        queue.shutdown()
    # NOTE: the queues' engines are deleted later by the event loop; let it run
    # before the queues go, as a window's queue outlives its engines.
    qtbot.wait(200)
    for store in stores:
        store.close()


def test_two_windows_share_the_queue_and_render_each_job_once(
    qtbot, tmp_path: Path, two_windows
) -> None:
    (first_store, second_store), queues, log = two_windows
    # Each window queues half the jobs; both then take whatever waits.
    ids = [
        queues[number % 2].add(job_spec(tmp_path, f"job-{number}"))
        for number in range(JOBS)
    ]
    for queue in queues:
        queue.start_waiting_jobs()

    def all_done() -> bool:
        finished = set(statuses(first_store).values()) == {JobStatus.FINISHED}
        return finished and all(queue.running_count() == 0 for queue in queues)

    qtbot.waitUntil(all_done, timeout=60_000)

    # Both windows see the same list, whole.
    assert statuses(second_store) == statuses(first_store)
    assert sorted(statuses(first_store)) == sorted(ids)
    # Every job's engine ran through exactly once: a window that loses the race
    # for a job stops its engine before it renders.
    rendered = Counter(
        json.loads(Path(line).read_text(encoding="utf-8"))["output"]
        for line in log.read_text(encoding="utf-8").splitlines()
    )
    assert rendered == Counter(first_store.get(job_id).spec.output for job_id in ids)


def test_each_window_shows_what_the_other_did(
    qtbot, tmp_path: Path, two_windows
) -> None:
    (_, second_store), (first, second), _ = two_windows
    # Neither window starts a render here: only the list is watched.
    for queue in (first, second):
        queue.renders_at_once = 0
    with qtbot.waitSignal(first.jobs_changed, timeout=10_000):
        job_id = second.add(job_spec(tmp_path, "from the other window"))
    assert [record.id for record in first.records()] == [job_id]

    changed: list[int] = []
    first.job_changed.connect(changed.append)
    second_store.mark_cancelled(job_id)
    qtbot.waitUntil(lambda: job_id in changed, timeout=10_000)
    assert first.record(job_id).status is JobStatus.CANCELLED


def test_a_cancel_or_retry_in_one_window_stops_the_other_windows_engine(
    qtbot, tmp_path: Path, stub_command
) -> None:
    log = tmp_path / "renders.log"
    # About five seconds a render: time to act on it from the other window.
    command = stub_command("normal_run.jsonl", "--delay", "0.15", "--log", str(log))
    stores = [JobStore(tmp_path / "jobs.sqlite3") for _ in range(2)]
    runner, other = (
        RenderQueue(store, tmp_path / f"window-{number}", command, renders_at_once=1)
        for number, store in enumerate(stores)
    )
    other.renders_at_once = 0
    try:
        job_id = runner.add(job_spec(tmp_path, "cancelled elsewhere"))
        qtbot.waitUntil(status_is(stores[1], job_id, JobStatus.RUNNING), timeout=5000)

        other.cancel(job_id)
        qtbot.waitUntil(lambda: runner.running_count() == 0, timeout=5000)
        assert stores[0].get(job_id).status is JobStatus.CANCELLED
        assert not log.exists(), "the cancelled render ran to its end"

        # A retry while the first engine still stops runs the job once, anew.
        other.retry(job_id)
        qtbot.waitUntil(
            status_is(stores[0], job_id, JobStatus.FINISHED), timeout=20_000
        )
        assert stores[0].get(job_id).attempts == 2
        assert len(log.read_text(encoding="utf-8").splitlines()) == 1
    finally:
        for queue in (runner, other):
            queue.shutdown()
        qtbot.wait(200)
        for store in stores:
            store.close()
