"""The benchmarks' shape and their pure helpers; the benchmarks themselves run
with `make bench` (figures, never timed assertions)."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.__main__ import BENCHMARKS
from benchmarks.analysis import count_hits
from benchmarks.common import run_measured, stage_durations


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_has_run_and_main(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")

    assert list(inspect.signature(module.run).parameters) == ["workdir", "quick"]
    assert callable(module.main)


def test_a_found_cut_counts_once_and_only_within_the_tolerance() -> None:
    truth = [30, 76, 137]

    assert count_hits(truth, [31, 75, 140], tolerance=2) == 2
    # One found cut between two true ones is one hit, not two.
    assert count_hits([10, 12], [11], tolerance=2) == 1
    assert count_hits(truth, [], tolerance=2) == 0


def test_each_stage_lasts_until_the_next_event(tmp_path: Path) -> None:
    events = [
        {"event": "started", "time": 99.0},
        {"event": "stage", "time": 100.0, "stage": "probe"},
        {"event": "progress", "time": 100.5, "stage": "probe"},
        {"event": "stage", "time": 101.5, "stage": "render"},
        {"event": "finished", "time": 104.0},
    ]
    log_path = tmp_path / "engine.log"
    lines = [json.dumps(event) for event in events]
    log_path.write_text("\n".join([*lines[:2], "INFO a log line", *lines[2:]]))

    assert stage_durations(log_path) == {"probe": 1.5, "render": 2.5}


def test_a_childs_peak_memory_leaves_out_its_parents(tmp_path: Path) -> None:
    # Linux starts a forked child's peak at the parent's resident memory.
    held = np.ones(300 * 2**20, dtype=np.uint8)

    measured = run_measured([sys.executable, "-c", "pass"], tmp_path / "child.log")

    assert measured.returncode == 0
    assert measured.peak_mb < 100
    assert held.sum() == held.size
