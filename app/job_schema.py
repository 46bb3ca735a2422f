"""The job store's SQLite file: where it lives, its schema and migrations, and how
a damaged file is recognised and moved aside. No Qt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import platformdirs

from app.job_records import STATUSES, StoreVersionError

log = logging.getLogger(__name__)

APP_NAME = "montage-ai"
STORE_FILE_NAME = "jobs.sqlite3"
# Points the job store (and job files) elsewhere: tests, portable installs.
DATA_DIR_ENV = "MONTAGE_AI_DATA_DIR"
SCHEMA_VERSION = 2
# SQLite's primary result codes for a file that is damaged or is not a database.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


class DamagedDatabaseError(sqlite3.DatabaseError):
    """The file opened, but SQLite's integrity check found faults in it."""


def data_dir() -> Path:
    """The app's data folder: $MONTAGE_AI_DATA_DIR, else the platform's."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_store_path() -> Path:
    """jobs.sqlite3 in the app's data folder."""
    return data_dir() / STORE_FILE_NAME


# Each entry takes the schema from its index to the next version.
_CREATE_JOBS = f"""
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN {STATUSES!r}),
    stage TEXT NOT NULL DEFAULT '',
    progress REAL NOT NULL DEFAULT 0.0,
    eta_sec REAL,
    outputs_json TEXT NOT NULL DEFAULT '{{}}',
    error_code TEXT,
    error_message TEXT,
    log_tail TEXT NOT NULL DEFAULT '',
    engine_pid INTEGER,
    attempts INTEGER NOT NULL DEFAULT 1,
    started_at TEXT,
    queue_order INTEGER NOT NULL DEFAULT 0
)"""
# Both hold JSON tagged with the attempt they belong to (see record_from_row).
_ADD_RESULTS = (
    "ALTER TABLE jobs ADD COLUMN warnings_json TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE jobs ADD COLUMN summary_json TEXT NOT NULL DEFAULT '{}'",
)
MIGRATIONS: list[tuple[str, ...]] = [
    (_CREATE_JOBS, "CREATE INDEX jobs_waiting ON jobs (status, queue_order)"),
    _ADD_RESULTS,
]
assert len(MIGRATIONS) == SCHEMA_VERSION


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the schema up to SCHEMA_VERSION in one transaction; return the version.

    Raises StoreVersionError for a database from a newer app, which is left as is.
    """
    with connection:
        connection.execute("BEGIN IMMEDIATE")
        version: int = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"The job list was saved by a newer Montage AI (schema {version}, "
                f"this one reads {SCHEMA_VERSION}). Update the app to see it."
            )
        for step in MIGRATIONS[version:]:
            for statement in step:
                connection.execute(statement)
        if version < SCHEMA_VERSION:
            log.info("Job store schema %d -> %d", version, SCHEMA_VERSION)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return SCHEMA_VERSION


def check_integrity(connection: sqlite3.Connection) -> None:
    """Raise DamagedDatabaseError unless SQLite's integrity check finds no fault."""
    rows = connection.execute("PRAGMA integrity_check").fetchall()
    problems = [row[0] for row in rows if row[0] != "ok"]
    if problems:
        raise DamagedDatabaseError(f"integrity check failed: {problems[:3]}")


def is_damage(error: sqlite3.DatabaseError) -> bool:
    """True for a damaged file or not a database; False for locks, I/O, etc."""
    if isinstance(error, DamagedDatabaseError):
        return True
    code = getattr(error, "sqlite_errorcode", 0)
    return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def move_aside(path: Path) -> Path:
    """Rename a damaged database and its -wal and -shm files; return the new path.

    The pair keeps its suffixes, so `jobs.sqlite3.damaged-<time>` opens with its WAL.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        # Another window may have moved it already.
        with contextlib.suppress(FileNotFoundError):
            source.rename(target.with_name(target.name + suffix))
    log.warning("Damaged job store moved to %s; starting an empty one", target)
    return target
