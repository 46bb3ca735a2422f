"""The hidden names files are written under until complete, and the sweep of those
a killed render left behind.

Standard library and psutil only: the app sweeps a removed job's leftovers with it.
"""

from __future__ import annotations

import logging
import os
from glob import escape as glob_escape
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".part"


def temp_path(path: Path) -> Path:
    """The hidden name a file is written under until it is complete."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def remove_stale_temp_files(output: Path) -> list[Path]:
    """Remove what an engine killed while writing `output` or a timeline beside it
    (the same name, another extension) left: hidden .part files whose process is
    gone (SIGKILL, power loss). Returns the files removed."""
    removed = []
    pattern = f".{glob_escape(output.stem)}.*{TEMP_SUFFIX}"
    for temp in output.parent.glob(pattern):
        pid_text = temp.name[: -len(TEMP_SUFFIX)].rpartition(".")[2]
        if not pid_text.isdigit() or _is_running(int(pid_text)):
            continue
        remove_quietly(temp)
        removed.append(temp)
    if removed:
        log.info("Removed temporary files of a stopped render: %s", removed)
    return removed


def remove_quietly(path: Path) -> None:
    """Remove a temporary file; one already gone or that cannot go is logged only."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as error:
        log.warning("Could not remove the temporary file %s: %s", path, error)


def _is_running(pid: int) -> bool:
    # psutil, not os.kill(pid, 0): on Windows signal 0 is CTRL_C_EVENT.
    return pid == os.getpid() or psutil.pid_exists(pid)
