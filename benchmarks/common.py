"""What every benchmark shares: its result rows, the table they print as, and
running an engine process while measuring its wall time and peak memory.

Each benchmark module has `run(workdir: Path, quick: bool) -> list[Result]` and a
`main()` that prints its own table; `python -m benchmarks` runs them all.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Result:
    """One measured figure beside its reference.

    ratio is ours / reference when both are numbers, the way the target reads:
    "at most 1.10" for times, "at least 2.0" for speeds. target names the goal
    in words; met is None where a figure has no target of its own.
    """

    benchmark: str
    measure: str
    ours: float
    reference: float | None
    unit: str
    target: str
    met: bool | None
    reference_name: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.reference is None or self.reference == 0:
            return None
        return self.ours / self.reference


@dataclass(frozen=True)
class Measured:
    """What one child process cost."""

    wall_sec: float
    peak_mb: float
    returncode: int


# Starts the measured command and reports its wall time and wait4 figures as
# JSON to the file named first. It runs as a small process of its own because
# Linux starts a child's peak (ru_maxrss) at its parent's resident memory when
# it forks or vforks: launched from this process, which has drawn 1080p frames,
# every child would report at least this process's peak.
_LAUNCHER = """
import json, os, subprocess, sys, time
started = time.monotonic()
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
wall_sec = time.monotonic() - started
report = {"wall_sec": wall_sec, "peak_kb": usage.ru_maxrss,
          "returncode": os.waitstatus_to_exitcode(status)}
with open(sys.argv[1], "w") as out:
    json.dump(report, out)
"""


def run_measured(
    command: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Measured:
    """Run a command to its end; its wall time and its own peak resident memory.

    os.wait4 gives this child's peak, where RUSAGE_CHILDREN would give the
    largest of all children so far; the wall time leaves out the launcher's own
    start.
    """
    report_path = log_path.with_name(log_path.name + ".measured.json")
    report_path.unlink(missing_ok=True)
    with open(log_path, "w") as log:
        subprocess.run(
            [python(), "-S", "-c", _LAUNCHER, str(report_path), *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            check=True,
        )
    report = json.loads(report_path.read_text())
    report_path.unlink()
    return Measured(report["wall_sec"], report["peak_kb"] / 1024, report["returncode"])


def check_exit(measured: Measured, what: str, log_path: Path) -> None:
    """Raise when a measured child failed: its figures would mean nothing."""
    if measured.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {measured.returncode}): see {log_path}"
        )


def engine_env(cache_dir: Path, numba_dir: Path | None = None) -> dict[str, str]:
    """The environment for an engine child with its own cache folder.

    numba's compiled functions live in cache_dir too, unless numba_dir names a
    folder to share (one `warm_numba` filled, as install does).
    """
    return {
        **os.environ,
        "MONTAGE_AI_CACHE_DIR": str(cache_dir),
        "NUMBA_CACHE_DIR": str(numba_dir or cache_dir / "numba"),
        "PYTHONPATH": str(REPO),
    }


def warm_numba(numba_dir: Path, log_path: Path) -> None:
    """Compile the music analysis into numba_dir once, untimed, as install does
    with `montage-ai warm-up`; a folder already warmed is left as it is."""
    done = numba_dir / ".warm"
    if done.exists():
        return
    numba_dir.mkdir(parents=True, exist_ok=True)
    env = engine_env(numba_dir.parent / "warm-up-cache", numba_dir)
    command = [python(), "-m", "engine.cli", "warm-up"]
    check_exit(run_measured(command, log_path, env), "montage-ai warm-up", log_path)
    done.touch()


@dataclass(frozen=True)
class EngineRun:
    """One engine job's process costs and its stages' seconds."""

    wall_sec: float
    peak_mb: float
    stages: dict[str, float]

    @property
    def other_sec(self) -> float:
        """Start-up, the director and exit: the time outside the stages."""
        return self.wall_sec - sum(self.stages.values())


def run_engine_job(
    job: dict[str, Any], job_path: Path, env: dict[str, str]
) -> EngineRun:
    """Write the job file, run `python -m engine` on it (its events and log go
    beside it, in a .log), and measure it; raise if it failed."""
    job_path.write_text(json.dumps(job))
    log_path = job_path.with_suffix(".log")
    measured = run_measured([python(), "-m", "engine", str(job_path)], log_path, env)
    check_exit(measured, "the engine", log_path)
    return EngineRun(measured.wall_sec, measured.peak_mb, stage_durations(log_path))


def stage_durations(log_path: Path) -> dict[str, float]:
    """Seconds per stage of one engine run, from the events in its log: each
    stage lasts until the next stage event or the finished event."""
    marks: list[tuple[str, float]] = []
    for line in log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("event") == "stage":
            marks.append((event["stage"], float(event["time"])))
        elif event.get("event") == "finished":
            marks.append(("", float(event["time"])))
    return {
        stage: end - start
        for (stage, start), (_, end) in itertools.pairwise(marks)
        if stage
    }


def machine() -> str:
    """The machine in one line, for the table's caption."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = psutil.virtual_memory().total / 2**30
    return (
        f"{cpu}, {psutil.cpu_count(logical=True)} logical cores, "
        f"{memory_gb:.0f} GB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:.{digits}f}{(' ' + unit) if unit else ''}"


def format_table(results: list[Result]) -> str:
    """The results as a Markdown table (it reads as plain text too)."""
    header = (
        "| benchmark | measure | ours | reference | ratio | target | met |\n"
        "|---|---|---|---|---|---|---|"
    )
    lines = [header]
    for result in results:
        reference = _number(result.reference, result.unit)
        if result.reference is not None and result.reference_name:
            reference += f" ({result.reference_name})"
        met = {True: "yes", False: "NO", None: "-"}[result.met]
        lines.append(
            f"| {result.benchmark} | {result.measure} "
            f"| {_number(result.ours, result.unit)} | {reference} "
            f"| {_number(result.ratio)} | {result.target} | {met} |"
        )
    return "\n".join(lines)


def print_results(results: list[Result], json_path: Path | None = None) -> None:
    print(format_table(results))
    notes = [f"- {r.benchmark}, {r.measure}: {r.note}" for r in results if r.note]
    if notes:
        print("\n" + "\n".join(notes))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": machine(),
            "results": [asdict(r) | {"ratio": r.ratio} for r in results],
        }
        json_path.write_text(json.dumps(payload, indent=2), encoding="utf-8")


def python() -> str:
    return sys.executable


def run_alone(
    name: str,
    description: str,
    run: Callable[[Path, bool], list[Result]],
    argv: list[str] | None = None,
) -> int:
    """A benchmark module's own main: --quick, --workdir, then its table."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small inputs")
    parser.add_argument("--workdir", type=Path, help="generated media and logs")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"montage-bench-{name}-"))
    print_results(run(workdir, args.quick))
    return 0
