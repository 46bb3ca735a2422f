"""Kill the whole app while it renders, start it again: nothing in the queue is lost.

The app runs as `python -m app` (offscreen), its store and settings in tmp_path and
the stub engine in place of the real one.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import Qt

from app.engine_process import ENGINE_COMMAND_ENV
from app.job_records import JobStatus
from app.job_schema import DATA_DIR_ENV
from app.job_store import JobStore
from app.main_window import MainWindow
from app.queue_panel import STATUS
from app.settings import CONFIG_DIR_ENV
from tests.app.conftest import FIXTURES, STUB_ENGINE
from tests.app.queue_helpers import job_spec, statuses

REPOSITORY = Path(__file__).resolve().parents[2]
APP_START_TIMEOUT_SEC = 30.0
WAITING, RUNNING = JobStatus.WAITING, JobStatus.RUNNING
FINISHED, INTERRUPTED = JobStatus.FINISHED, JobStatus.INTERRUPTED


def start_app(tmp_path: Path, stream: str) -> subprocess.Popen[bytes]:
    """`python -m app` on the store in tmp_path/data, with the stub as its engine."""
    engine = [sys.executable, str(STUB_ENGINE), "--delay", "0.002"]
    environment = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        DATA_DIR_ENV: str(tmp_path / "data"),
        CONFIG_DIR_ENV: str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        ENGINE_COMMAND_ENV: shlex.join([*engine, str(FIXTURES / stream)]),
    }
    with open(tmp_path / "app-stderr.log", "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=REPOSITORY,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def wait_for(
    condition: Callable[[], bool], app: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    deadline = time.monotonic() + APP_START_TIMEOUT_SEC
    while not condition():
        if app.poll() is not None or time.monotonic() > deadline:
            log_text = (tmp_path / "app-stderr.log").read_text(errors="replace")
            pytest.fail(f"the app never got there (exit {app.poll()}):\n{log_text}")
        time.sleep(0.05)


def kill_process(pid: int) -> bool:
    """SIGKILL pid if it is still there and wait for it; True if it was there."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        process.kill()
    except psutil.NoSuchProcess:
        return False
    psutil.wait_procs([process], timeout=5)
    return True


def queue_jobs(store: JobStore, tmp_path: Path) -> tuple[int, int, int, int]:
    """A finished job from history, then three waiting ones."""
    history = store.add(job_spec(tmp_path, "history"))
    store.mark_running(history, os.getpid())
    store.mark_finished(history, {"video": str(tmp_path / "out" / "history.mp4")})
    first, second, third = (store.add(job_spec(tmp_path, name)) for name in "abc")
    return history, first, second, third


def test_a_killed_app_leaves_its_job_interrupted_and_runnable(
    qtbot, tmp_path, stub_command
):
    store = JobStore(tmp_path / "data" / "jobs.sqlite3")
    history, first, second, third = queue_jobs(store, tmp_path)

    # 1. The app starts the first job; the whole app is killed while it runs.
    app = start_app(tmp_path, "hangs_in_render.jsonl")
    try:
        wait_for(lambda: store.get(first).engine_pid is not None, app, tmp_path)
        engine_pid = store.get(first).engine_pid
        assert engine_pid is not None
        assert psutil.Process(engine_pid).ppid() == app.pid
        app.send_signal(signal.SIGKILL)
        app.wait(timeout=10)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    # NOTE: the real engine dies with its app (PR_SET_PDEATHSIG, see
    # tests/test_engine.py); this stub does not, so the test ends it.
    kill_process(engine_pid)
    assert statuses(store) == {
        history: FINISHED,
        first: RUNNING,
        second: WAITING,
        third: WAITING,
    }

    # 2. Started again: the lost job is interrupted, the waiting ones run.
    app = start_app(tmp_path, "normal_run.jsonl")
    try:
        wait_for(lambda: store.get(third).status is FINISHED, app, tmp_path)
    finally:
        app.terminate()
        app.wait(timeout=10)
    assert statuses(store) == {
        history: FINISHED,
        first: INTERRUPTED,
        second: FINISHED,
        third: FINISHED,
    }
    assert "Retry" in (store.get(first).error_message or "")

    # 3. The window shows it as interrupted, and one click runs it again.
    window = MainWindow(
        engine_command=stub_command("normal_run.jsonl", "--delay", "0.001"),
        jobs_dir=tmp_path / "jobs",
        output_dir=tmp_path / "out",
        store=store,
    )
    qtbot.addWidget(window)
    try:
        window.show()
        panel = window.queue_panel
        row = panel.model.row_of(first)
        assert row is not None
        assert panel.model.index(row, STATUS).data() == "Interrupted"
        panel.select_job(first)
        assert panel.retry_button.isEnabled()
        qtbot.mouseClick(panel.retry_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: store.get(first).status is FINISHED, timeout=10_000)
        assert store.get(first).attempts == 2
        assert len(store.list_jobs()) == 4
    finally:
        window.close()
        store.close()
