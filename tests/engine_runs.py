"""Running the engine as the app does: a job file and `python -m engine`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.protocol import parse_event


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
