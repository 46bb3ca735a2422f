"""Analysis results cached as JSON, keyed by a hash of the file's content."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from engine.paths import cache_dir

log = logging.getLogger(__name__)

T = TypeVar("T")

# Files up to this size are hashed whole; larger ones by size and sampled chunks,
# so a two-hour source costs a few reads, not a full pass over the disk.
WHOLE_HASH_LIMIT_BYTES = 64 * 1024 * 1024
SAMPLE_CHUNK_BYTES = 1024 * 1024
SAMPLE_COUNT = 16


def content_hash(path: str | Path) -> str:
    """A SHA-256 of the file's content (sampled for large files), hex."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as stream:
        if size <= WHOLE_HASH_LIMIT_BYTES:
            for chunk in iter(lambda: stream.read(SAMPLE_CHUNK_BYTES), b""):
                digest.update(chunk)
        else:
            step = (size - SAMPLE_CHUNK_BYTES) // (SAMPLE_COUNT - 1)
            for index in range(SAMPLE_COUNT):
                stream.seek(index * step)
                digest.update(stream.read(SAMPLE_CHUNK_BYTES))
    return digest.hexdigest()


def load(kind: str, key: str, parse: Callable[[dict[str, Any]], T]) -> T | None:
    """The cached result for key, parsed, or None when absent or unusable.

    An entry that cannot be read or parsed (a damaged file, an older layout) is a
    miss, never an error: the analysis simply runs again.
    """
    try:
        path = cache_dir(kind) / f"{key}.json"
        with path.open(encoding="utf-8") as stream:
            return parse(json.load(stream))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        log.warning("Ignoring an unusable %s cache entry %s: %s", kind, key, error)
        return None


def store(kind: str, key: str, data: dict[str, Any]) -> None:
    """Write a result atomically; a cache that cannot be written is only logged."""
    try:
        folder = cache_dir(kind)
        handle, temp_name = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream)
        os.replace(temp_name, folder / f"{key}.json")
    except OSError as error:
        log.warning("Could not write the %s cache: %s", kind, error)
