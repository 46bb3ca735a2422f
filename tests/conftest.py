"""Session-wide test settings: offscreen Qt, a private cache and a media folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest

from engine.paths import APP_NAME, CACHE_ENV

# Set before any test imports PySide6: there is no display on the test machines.
os.environ["QT_QPA_PLATFORM"] = "offscreen"
# numba's compiled functions outlive a session (`montage-ai warm-up` fills this):
# a private, empty cache would cost every test run a minute of compiling.
os.environ.setdefault(
    "NUMBA_CACHE_DIR",
    str(Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "numba"),
)


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point the engine's cache at a folder of this session, then restore it."""
    cache_dir = tmp_path_factory.mktemp("cache")
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(cache_dir)
    yield cache_dir
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for generated media, shared by every test of the session."""
    return tmp_path_factory.mktemp("media")
