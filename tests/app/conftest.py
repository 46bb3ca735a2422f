"""App test fixtures: the stub engine, and checks that a test leaves nothing behind.

A test fails if it logged an ERROR it did not expect, or left a thread or a child
process running.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import psutil
import pytest
from PySide6.QtCore import QThreadPool

from app.engine_process import ENGINE_COMMAND_ENV, EngineCommand, EngineProcess
from app.job_schema import DATA_DIR_ENV
from app.job_store import JobStore
from app.main_window import MainWindow
from app.settings import CONFIG_DIR_ENV

HERE = Path(__file__).parent
STUB_ENGINE = HERE / "stub_engine.py"
STUB_EXPORTER = HERE / "stub_exporter.py"
FIXTURES = HERE / "fixtures"

StubCommand = Callable[..., EngineCommand]


@pytest.fixture
def stub_command() -> StubCommand:
    """stub_command("normal_run.jsonl", "--delay", "0.01") -> an EngineCommand."""

    def make(stream: str, *options: str) -> EngineCommand:
        return EngineCommand(
            sys.executable, [str(STUB_ENGINE), *options, str(FIXTURES / stream)]
        )

    return make


@pytest.fixture
def stub_exporter() -> StubCommand:
    """stub_exporter("--warning", "No fades.") -> an EngineCommand for exports."""

    def make(*options: str) -> EngineCommand:
        return EngineCommand(sys.executable, [str(STUB_EXPORTER), *options])

    return make


@pytest.fixture
def make_engine(qtbot) -> Iterator[Callable[..., EngineProcess]]:
    """make_engine(command) -> an EngineProcess, shut down after the test."""
    made: list[EngineProcess] = []

    def make(command: EngineCommand, **options: int) -> EngineProcess:
        process = EngineProcess(command, **options)
        made.append(process)
        return process

    yield make
    for process in made:
        process.shutdown()


@pytest.fixture(autouse=True)
def isolated_app_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The job store, job files and settings of any window go under tmp_path."""
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "config"))
    monkeypatch.delenv(ENGINE_COMMAND_ENV, raising=False)
    return tmp_path


@pytest.fixture(autouse=True)
def quit_without_asking(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window closes with renders running without its modal question, which
    would wait for a click; tests of the question patch confirm_quit themselves."""
    monkeypatch.setattr(MainWindow, "confirm_quit", lambda self, running_count: True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    """A job store in tmp_path, closed after the test."""
    with JobStore(tmp_path / "jobs.sqlite3") as job_store:
        yield job_store


@pytest.fixture
def make_window(
    qtbot, tmp_path: Path, store: JobStore
) -> Iterator[Callable[..., MainWindow]]:
    """make_window(command, store=..., export_command=...) -> a shown MainWindow."""
    made: list[MainWindow] = []

    def make(
        command: EngineCommand | None = None,
        store: JobStore = store,
        export_command: EngineCommand | None = None,
    ) -> MainWindow:
        window = MainWindow(
            engine_command=command,
            jobs_dir=tmp_path / "jobs",
            output_dir=tmp_path / "out",
            store=store,
            export_command=export_command,
        )
        qtbot.addWidget(window)
        made.append(window)
        window.show()
        return window

    yield make
    # Closed here, before the store fixture closes the database under them.
    for window in made:
        window.close()


@pytest.fixture
def allowed_errors() -> list[str]:
    """Substrings of ERROR log messages the test expects; append to allow one."""
    return []


@pytest.fixture(autouse=True)
def leaves_nothing_behind(
    caplog: pytest.LogCaptureFixture, allowed_errors: list[str]
) -> Iterator[None]:
    threads_before = set(threading.enumerate())
    yield
    children = psutil.Process().children(recursive=True)
    assert not children, f"child processes left running: {children}"
    new_threads = set(threading.enumerate()) - threads_before
    assert not new_threads, f"threads left running: {new_threads}"
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    unexpected = [
        record.getMessage()
        for record in caplog.get_records("call")
        if record.levelno >= logging.ERROR
        and not any(allowed in record.getMessage() for allowed in allowed_errors)
    ]
    assert not unexpected, f"unexpected errors logged: {unexpected}"
