"""The Makefile's commands work on a fresh clone: every script it runs is in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_script_the_makefile_runs_is_in_the_repository():
    makefile = (ROOT / "Makefile").read_text()
    scripts = re.findall(r"\bbash\s+(\S+\.sh)\b", makefile)

    assert scripts, "the Makefile runs no shell scripts: update this test"
    for script in scripts:
        path = (ROOT / script).resolve()
        assert path.is_relative_to(ROOT), f"{script} lies outside the repository"
        assert path.is_file(), f"{script} is missing"
