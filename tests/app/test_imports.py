"""The app loads the engine's protocol and temporary-file names, nothing heavy: no
media libraries."""

from __future__ import annotations

import os
import subprocess
import sys

HEAVY_MODULES = ("av", "numpy", "librosa", "numba", "opentimelineio")

PROBE = """
import sys
import app.main
heavy = [name for name in {heavy!r} if name in sys.modules]
engine = sorted(name for name in sys.modules if name.startswith("engine."))
print(heavy, engine)
"""


def test_the_app_imports_only_the_protocol_and_temp_file_names_of_the_engine():
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY_MODULES)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.stdout.strip() == "[] ['engine.protocol', 'engine.temp_files']"
