"""What every benchmark shares: its result rows, the table they print as, and
running an engine process while measuring its wall time and peak memory.

Each benchmark module has `run(workdir: Path, quick: bool) -> list[Result]` and a
`main()` that prints its own table; `python -m benchmarks` runs them all.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

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


def run_measured(
    command: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Measured:
    """Run a command to its end; its wall time and its own peak resident memory.

    os.wait4 gives this child's peak, where RUSAGE_CHILDREN would give the
    largest of all children so far.
    """
    started = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
        _, status, usage = os.wait4(process.pid, 0)
    wall_sec = time.monotonic() - started
    return Measured(wall_sec, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))


def engine_env(cache_dir: Path) -> dict[str, str]:
    """The environment for an engine child with its own cache folder."""
    return {
        **os.environ,
        "MONTAGE_AI_CACHE_DIR": str(cache_dir),
        "PYTHONPATH": str(REPO),
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
