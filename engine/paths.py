"""Where the engine keeps its caches: the platformdirs user cache, or an override."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import platformdirs

APP_NAME = "montage-ai"
CACHE_ENV = "MONTAGE_AI_CACHE_DIR"


def cache_dir(kind: str) -> Path:
    """The cache folder for one kind of result (music, clips, numba), created."""
    root = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir(
        APP_NAME, appauthor=False
    )
    folder = Path(root) / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def configure_numba_cache() -> None:
    """Point numba's compiled-function cache at our cache, before librosa loads.

    Without a usable cache folder numba keeps its own default; analysis still runs.
    """
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    with contextlib.suppress(OSError):
        os.environ["NUMBA_CACHE_DIR"] = str(cache_dir("numba"))
