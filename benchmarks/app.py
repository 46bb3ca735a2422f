"""Benchmark 5, the app: launch to first paint, and GUI stalls while work runs.

Launch: `montage-ai-gui`'s entry point (app.main:main) as a fresh offscreen process
with fresh data and config folders prints the monotonic time of its main window's
first paint (MONTAGE_AI_REPORT_FIRST_PAINT=1); the launcher took the same clock
just before starting it. Reference: a bare PySide6 QMainWindow, measured the same
way. Runs alternate between the two and the medians are compared.

Stalls: in one child process, the real main window renders a montage through its
queue and the real engine while clips dropped into its media bin are thumbnailed;
a 5 ms QTimer records the gaps between its ticks. Reference: the same probe on
the idle window, before any work starts.

Usage: python -m benchmarks.app [--quick] [--workdir DIR]
       python -m benchmarks.app --probe-stalls WORKDIR [--quick]   (the child)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, Result, print_results

BENCHMARK = "app"
LAUNCH_TARGET_SEC = 1.5
STALL_TARGET_MS = 50.0
PROBE_INTERVAL_MS = 5
LAUNCH_TIMEOUT_SEC = 60
STALL_TIMEOUT_SEC = 420
FIRST_PAINT_PREFIX = "first_paint_monotonic_sec="

# The same entry point as the montage-ai-gui script.
APP_LAUNCH = "import sys; from app.main import main; sys.exit(main())"
# A bare window of the app's size, with the app's own first-paint reporter.
REFERENCE_LAUNCH = """
import sys
from PySide6.QtWidgets import QApplication, QMainWindow
from app.first_paint import FirstPaintReporter
app = QApplication(sys.argv)
window = QMainWindow()
window.resize(1040, 780)
FirstPaintReporter(window)
window.show()
sys.exit(app.exec())
"""


@dataclass(frozen=True)
class Sizes:
    """How much work the stall probe gives the window."""

    launches: int
    idle_sec: float
    render_clips: int
    render_clip_frames: int
    thumbnail_clips: int
    montage_sec: int


FULL = Sizes(
    launches=5,
    idle_sec=3.0,
    render_clips=4,
    render_clip_frames=250,
    thumbnail_clips=20,
    montage_sec=20,
)
QUICK = Sizes(
    launches=2,
    idle_sec=1.0,
    render_clips=2,
    render_clip_frames=100,
    thumbnail_clips=5,
    montage_sec=6,
)


def app_env(root: Path) -> dict[str, str]:
    """An offscreen app with its own job store, settings, log and caches."""
    return {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHONPATH": str(REPO),
        "MONTAGE_AI_DATA_DIR": str(root / "data"),
        "MONTAGE_AI_CONFIG_DIR": str(root / "config"),
        # The log folder: platformdirs' user_log_dir.
        "XDG_STATE_HOME": str(root / "state"),
        "MONTAGE_AI_CACHE_DIR": str(root / "cache"),
    }


# Launch to first paint


def launch_to_first_paint_sec(code: str, workdir: Path) -> float:
    """Seconds from just before the process starts to its window's first paint."""
    root = Path(tempfile.mkdtemp(prefix="launch-", dir=workdir))
    env = app_env(root) | {"MONTAGE_AI_REPORT_FIRST_PAINT": "1"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=LAUNCH_TIMEOUT_SEC,
    )
    painted = [
        float(line.removeprefix(FIRST_PAINT_PREFIX))
        for line in result.stdout.splitlines()
        if line.startswith(FIRST_PAINT_PREFIX)
    ]
    shutil.rmtree(root, ignore_errors=True)
    if result.returncode != 0 or not painted:
        raise RuntimeError(
            f"the window did not report a paint (exit {result.returncode}): "
            f"{result.stderr[-2000:]}"
        )
    return painted[0] - started


def measure_launch(workdir: Path, sizes: Sizes) -> Result:
    ours, bare = [], []
    # One untimed pair first: the page cache holds Qt's libraries afterwards.
    launch_to_first_paint_sec(APP_LAUNCH, workdir)
    launch_to_first_paint_sec(REFERENCE_LAUNCH, workdir)
    for _ in range(sizes.launches):
        ours.append(launch_to_first_paint_sec(APP_LAUNCH, workdir))
        bare.append(launch_to_first_paint_sec(REFERENCE_LAUNCH, workdir))
    ours_sec, bare_sec = statistics.median(ours), statistics.median(bare)
    return Result(
        BENCHMARK,
        f"launch to first paint (median of {sizes.launches})",
        ours_sec,
        bare_sec,
        "s",
        f"< {LAUNCH_TARGET_SEC} s",
        ours_sec < LAUNCH_TARGET_SEC,
        reference_name="bare PySide6 window",
        note=f"ours {_list(ours)} s; bare window {_list(bare)} s",
    )


def _list(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


# GUI stalls, measured in a child process


def measure_stalls(workdir: Path, quick: bool) -> list[Result]:
    command = [sys.executable, "-m", "benchmarks.app", "--probe-stalls", str(workdir)]
    if quick:
        command.append("--quick")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log_path = workdir / "stall-probe.log"
    with open(log_path, "w") as log:
        result = subprocess.run(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            timeout=STALL_TIMEOUT_SEC,
            cwd=REPO,
        )
    if result.returncode != 0:
        raise RuntimeError(f"the stall probe failed: see {log_path}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    idle, busy = report["idle"], report["busy"]
    work = (
        f"a {report['montage_sec']} s preview montage from {report['render_clips']} "
        f"clips (job {report['job_status']}, {report['render_sec']:.0f} s) while "
        f"{report['thumbnails']} of {report['thumbnail_clips']} dropped clips got "
        f"thumbnails; {busy['ticks']} ticks over {busy['seconds']:.0f} s, "
        f"longest at {busy['longest_at']}"
    )
    return [
        Result(
            BENCHMARK,
            "longest GUI stall, render + thumbnails",
            busy["max_ms"],
            idle["max_ms"],
            "ms",
            f"< {STALL_TARGET_MS:.0f} ms",
            busy["max_ms"] < STALL_TARGET_MS,
            reference_name="idle window",
            note=work,
        ),
        Result(
            BENCHMARK,
            "99th percentile tick gap, render + thumbnails",
            busy["p99_ms"],
            idle["p99_ms"],
            "ms",
            "-",
            None,
            reference_name="idle window",
        ),
    ]


def run(workdir: Path, quick: bool) -> list[Result]:
    """Launch times of ours and a bare window, then the stall probe."""
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = QUICK if quick else FULL
    return [measure_launch(workdir, sizes), *measure_stalls(workdir, quick)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--probe-stalls", type=Path, metavar="WORKDIR")
    args = parser.parse_args(argv)
    if args.probe_stalls is not None:
        from benchmarks.app_probe import probe_stalls

        report: dict[str, Any] = probe_stalls(
            args.probe_stalls, QUICK if args.quick else FULL
        )
        sys.stdout.write(json.dumps(report) + "\n")
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="montage-bench-app-"))
    print_results(run(workdir, args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
