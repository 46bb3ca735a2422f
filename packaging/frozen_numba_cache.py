"""numba's compiled-function cache in NUMBA_CACHE_DIR, for the frozen app.

numba's locator for NUMBA_CACHE_DIR wants each function's source file where its
code says it is; in the bundle code names files relative to it (librosa/beat.py),
so numba fell back to its own folder and ignored MONTAGE_AI_CACHE_DIR. This one
looks for the source (collected by the spec) inside the bundle; the entry point
names it in NUMBA_CACHE_LOCATOR_CLASSES and numba imports it when it first caches.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from numba.core.caching import UserProvidedCacheLocator


class BundleCacheLocator(UserProvidedCacheLocator):  # type: ignore[misc]
    """NUMBA_CACHE_DIR for functions whose file is named relative to the bundle."""

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> Any:
        bundle = getattr(sys, "_MEIPASS", "")
        if bundle and not os.path.isabs(py_file):
            py_file = os.path.join(bundle, py_file)
        return super().from_function(py_func, py_file)
