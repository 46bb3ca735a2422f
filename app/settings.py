"""The user's settings, kept as a small JSON file in the platform's config folder.

No Qt: the window reads them at start and the settings dialog writes them back.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from app.memory import DEFAULT_LIMIT_MB
from engine import protocol

log = logging.getLogger(__name__)

APP_NAME = "montage-ai"
SETTINGS_FILE_NAME = "settings.json"
# Points the settings file elsewhere (tests, portable installs).
CONFIG_DIR_ENV = "MONTAGE_AI_CONFIG_DIR"
MAX_RENDERS_AT_ONCE = 4
MIN_MEMORY_LIMIT_MB = 300
MAX_MEMORY_LIMIT_MB = 65536
# Why a folder could not be created or written in, in words, by errno.
OUTPUT_DIR_CAUSES = {
    errno.EACCES: "you have no permission to write there",
    errno.EPERM: "the system does not allow writing there",
    errno.EROFS: "its disk is read-only",
    errno.ENOSPC: "its disk is full",
    errno.EDQUOT: "your disk quota is used up",
    errno.ENOENT: "the system does not allow a folder there",
    errno.ENAMETOOLONG: "the name is too long",
}


class OutputDirError(ValueError):
    """An output folder that cannot be created or written in; says why."""


def default_output_dir() -> Path:
    return Path(platformdirs.user_videos_dir()) / "Montage AI"


def default_log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def settings_path() -> Path:
    """settings.json in the platform's config folder, or under $MONTAGE_AI_CONFIG_DIR."""
    override = os.environ.get(CONFIG_DIR_ENV)
    config_dir = (
        Path(override)
        if override
        else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    )
    return config_dir / SETTINGS_FILE_NAME


@dataclass(frozen=True)
class AppSettings:
    output_dir: str = dataclasses.field(
        default_factory=lambda: str(default_output_dir())
    )
    renders_at_once: int = 1
    memory_limit_mb: int = DEFAULT_LIMIT_MB
    default_quality: str = "final"
    # The AI director (optional): an OpenAI-compatible endpoint and its model. The
    # key stays in this file (readable by its owner only) and reaches the engine
    # in its environment, never in a job file or a log.
    director_url: str = ""
    director_model: str = ""
    director_key: str = dataclasses.field(default="", repr=False)

    def checked(self) -> AppSettings:
        """The same settings with every value brought into its allowed range."""
        quality = self.default_quality
        return dataclasses.replace(
            self,
            output_dir=self.output_dir or str(default_output_dir()),
            renders_at_once=min(MAX_RENDERS_AT_ONCE, max(1, self.renders_at_once)),
            memory_limit_mb=min(
                MAX_MEMORY_LIMIT_MB, max(MIN_MEMORY_LIMIT_MB, self.memory_limit_mb)
            ),
            default_quality=quality if quality in protocol.QUALITIES else "final",
            director_url=str(self.director_url).strip(),
            director_model=str(self.director_model).strip(),
            director_key=str(self.director_key).strip(),
        )


def prepare_output_dir(folder: str) -> Path:
    """Create the output folder if needed and check that a file can be written in it.

    Raises OutputDirError with a message for the user naming the folder and why.
    """
    path = Path(folder).expanduser()
    if not path.is_absolute():
        # Relative to what the app was started from, which a user never sees.
        cause = "it is not a whole path (give it from the top, or from ~ for home)"
        raise OutputDirError(_output_dir_message(path, cause))
    try:
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            where = "it" if existing == path else str(existing)
            cause = f"{where} is a file, not a folder"
            raise OutputDirError(_output_dir_message(path, cause))
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        cause = OUTPUT_DIR_CAUSES.get(error.errno or 0, error.strerror or str(error))
        raise OutputDirError(_output_dir_message(path, cause)) from error
    return path


def _output_dir_message(path: Path, cause: str) -> str:
    return (
        f"Montage AI cannot save montages in {path}: {cause}. Choose a folder you "
        "can write in, or one it can create."
    )


def load_settings(path: Path | None = None) -> AppSettings:
    """The saved settings; defaults for a missing, unreadable or odd file."""
    path = path or settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {field.name for field in dataclasses.fields(AppSettings)}
        return AppSettings(**{k: v for k, v in data.items() if k in known}).checked()
    except FileNotFoundError:
        return AppSettings()
    except (OSError, ValueError, TypeError, AttributeError) as error:
        log.warning("Settings file %s is unreadable (%s); using defaults", path, error)
        return AppSettings()


def save_settings(settings: AppSettings, path: Path | None = None) -> None:
    """Write the settings; raises OSError if the file cannot be written."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    # Created private before the key is written into it.
    temporary.touch(mode=0o600)
    temporary.chmod(0o600)
    temporary.write_text(
        json.dumps(dataclasses.asdict(settings), indent=2), encoding="utf-8"
    )
    temporary.replace(path)
    log.info("Settings saved to %s", path)
