"""Running the engine as the app does: a job file and `python -m engine`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.protocol import Event, EventKind, parse_event


def run_engine(
    job: dict[str, Any],
    folder: Path,
    preexec: Callable[[], None] | None = None,
) -> tuple[int, list[Any], str]:
    """Write job to folder/job.json and run it; preexec runs in the engine's
    process before it starts (to set a resource limit)."""
    job_path = folder / "job.json"
    job_path.write_text(json.dumps(job), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "engine", str(job_path)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=preexec,
    )
    events = [parse_event(line) for line in result.stdout.splitlines()]
    return result.returncode, events, result.stderr


def start_engine(job: dict[str, Any], folder: Path) -> subprocess.Popen[str]:
    """Write job to folder/job.json and start the engine on it, its events to read
    from stdout as they come."""
    job_path = folder / "job.json"
    job_path.write_text(json.dumps(job), encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "-m", "engine", str(job_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def read_until(process: subprocess.Popen[str], wanted: Callable[[Event], bool]) -> None:
    """Read the engine's events until one is wanted (or the engine ends)."""
    assert process.stdout is not None
    for line in process.stdout:
        if wanted(parse_event(line)):
            return


def rendering_past(fraction: float) -> Callable[[Event], bool]:
    """Whether an event is the render's progress beyond fraction."""

    def past(event: Event) -> bool:
        return (
            event.kind is EventKind.PROGRESS
            and event.data["stage"] == "render"
            and event.data["fraction"] > fraction
        )

    return past
