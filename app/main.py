"""`montage-ai-gui`: set up logging to a rotating file, show the window, run Qt."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from importlib import resources
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from app.first_paint import FirstPaintReporter, first_paint_wanted
from app.job_records import JobStoreError
from app.main_window import MainWindow
from app.settings import default_log_dir

log = logging.getLogger(__name__)

LOG_FILE_NAME = "montage-ai.log"
LOG_FILE_BYTES = 1_000_000
LOG_FILE_BACKUPS = 3
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ICON_NAME = "montage-ai.svg"


def configure_logging(log_dir: Path | None = None) -> Path:
    """Log to a rotating file in the platform's log folder (and stderr if any)."""
    log_dir = log_dir or default_log_dir()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / LOG_FILE_NAME
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(
            log_path,
            maxBytes=LOG_FILE_BYTES,
            backupCount=LOG_FILE_BACKUPS,
            encoding="utf-8",
        )
    ]
    # A GUI launch on Windows has no stderr at all.
    if sys.stderr is not None:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers)
    return log_path


def main() -> int:
    log_path = configure_logging()
    app = QApplication(sys.argv)
    app.setApplicationName("Montage AI")
    app.setDesktopFileName("montage-ai")
    app.setWindowIcon(QIcon(str(resources.files("resources") / "icons" / ICON_NAME)))
    log.info("Montage AI started; logging to %s", log_path)

    try:
        window = MainWindow()
    except JobStoreError as error:
        log.error("The job list could not be opened: %s", error)
        QMessageBox.critical(None, "Montage AI", str(error))
        return 1
    if first_paint_wanted():
        FirstPaintReporter(window)
    window.show()
    # A job file given on the command line (a double-click on it) fills the form.
    job_files = app.arguments()[1:]
    if job_files:
        window.job_files.open(Path(job_files[0]))
    status = app.exec()
    log.info("Montage AI closed (status %d)", status)
    return status


if __name__ == "__main__":
    sys.exit(main())
