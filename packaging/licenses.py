"""Gathers every third-party licence notice into the bundle, by tools, not by hand.

pip-licenses reads the licence and notice files of each Python distribution the
app depends on; each wheel's RECORD names the native libraries vendored into it
(FFmpeg, x264 and x265 in PyAV's); PyAV reports FFmpeg's own licence and build
configuration; dpkg names the Debian package of each system library PyInstaller
copied from the build machine, whose copyright file comes along.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "montage-ai"
# In the bundle, though not a dependency of the app: the bootloader.
BUNDLED_TOOLS = ("pyinstaller",)
# The build venv installs the headless cv2 in place of the one a dependency names.
REPLACED = {"opencv-python": "opencv-python-headless"}
# Texts for licences whose wheel carries none (PySide6 and shiboken6).
LICENSE_TEXTS = {
    "LGPL-3.0-only": ROOT / "packaging" / "licenses" / "LGPL-3.0-only.txt",
    "GPL-3.0-only": ROOT / "LICENSE",
}
SHARED_LIBRARY = re.compile(r"\.(so(\.\d+)*|dylib|dll)$")
GPL_NOTE = """\
PyAV's wheel carries FFmpeg linked with libx264 and libx265, which are licensed
under the GNU GPL version 2 or later: the FFmpeg in this bundle is therefore
under the GPL, and Montage AI as a whole is distributed under the GNU GPL
version 3 or later (LICENSE.txt). Montage AI's own source is in source/.
"""


def runtime_distributions(root: str = PROJECT) -> list[metadata.Distribution]:
    """The distributions root needs at run time (extras left out), and the tools."""
    environment = {**default_environment(), "extra": ""}
    seen: dict[str, metadata.Distribution] = {}
    pending = [root, *BUNDLED_TOOLS]
    while pending:
        name = canonicalize_name(pending.pop())
        name = REPLACED.get(name, name)
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            log.warning("%s is needed but not installed; its licence is missing", name)
            continue
        seen[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or marker.evaluate(environment):
                pending.append(requirement.name)
    seen.pop(canonicalize_name(root), None)
    return sorted(seen.values(), key=lambda dist: canonicalize_name(dist.name))


def python_licenses(names: list[str]) -> list[dict[str, Any]]:
    """pip-licenses' record (name, version, licence, texts) of each distribution."""
    command = [sys.executable, "-m", "piplicenses", "--format=json", "--with-urls"]
    command += ["--with-license-file", "--with-notice-file", "--no-license-path"]
    result = subprocess.run(
        [*command, "--packages", *names], capture_output=True, text=True, check=True
    )
    records: list[dict[str, Any]] = json.loads(result.stdout)
    for record in records:
        if _missing(record["LicenseText"]):
            record["LicenseText"] = _texts_for(record["License"])
    return records


def vendored_libraries(dists: Iterable[metadata.Distribution]) -> dict[str, list[str]]:
    """Shared libraries each wheel carries in its own *.libs folder, by wheel."""
    found = {}
    for dist in dists:
        names = sorted(
            file.name
            for file in dist.files or []
            if file.parts[0].endswith(".libs") and SHARED_LIBRARY.search(file.name)
        )
        if names:
            found[dist.name] = names
    return found


def ffmpeg_build() -> dict[str, str]:
    """FFmpeg's licence and configure line, as the bundled libavcodec reports them."""
    import av

    meta = av._core.library_meta["libavcodec"]
    return {
        "version": av.ffmpeg_version_info,
        "license": meta["license"],
        "configuration": meta["configuration"],
    }


def system_libraries(
    bundle: Path, dists: Iterable[metadata.Distribution]
) -> dict[str, str]:
    """Each library in the bundle that no wheel carries, by its Debian package.

    A library whose package cannot be found (no dpkg here) maps to "".
    """
    from_wheels = {file.name for dist in dists for file in dist.files or []}
    names = sorted(
        {
            path.name
            for path in bundle.rglob("*")
            if SHARED_LIBRARY.search(path.name)
            and path.name not in from_wheels
            and not _part_of_python(path)
        }
    )
    packages = dict.fromkeys(names, "")
    if names and shutil.which("dpkg"):
        result = subprocess.run(
            ["dpkg", "-S", *(f"*/{name}" for name in names)],
            capture_output=True,
            text=True,
        )
        for line in result.stdout.splitlines():
            package, _, path = line.partition(": ")
            name = Path(path).name
            if name in packages and not packages[name]:
                packages[name] = package.split(":")[0]
    return packages


def _part_of_python(path: Path) -> bool:
    """Python's own library and extension modules: under Python's licence."""
    return path.name.startswith("libpython") or path.parent.name == "lib-dynload"


def write_notices(bundle: Path, out_dir: Path) -> dict[str, Any]:
    """Write THIRD-PARTY-LICENSES.txt and third-party-licenses.json into out_dir.

    Returns the JSON's content: python (name, version, licence, URL of each),
    without_text (names whose licence text was found nowhere), vendored, ffmpeg
    and system (library: Debian package, "" where unknown).
    """
    dists = runtime_distributions()
    records = python_licenses([dist.name for dist in dists])
    report = {
        "python": [{k: v for k, v in r.items() if "Text" not in k} for r in records],
        "without_text": [r["Name"] for r in records if _missing(r["LicenseText"])],
        "vendored": vendored_libraries(dists),
        "ffmpeg": ffmpeg_build(),
        "system": system_libraries(bundle, dists),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "third-party-licenses.json").write_text(
        json.dumps(report, indent=2), encoding="utf-8"
    )
    text = _notices_text(records, report)
    (out_dir / "THIRD-PARTY-LICENSES.txt").write_text(text, encoding="utf-8")
    return report


def _notices_text(records: list[dict[str, Any]], report: dict[str, Any]) -> str:
    parts = [GPL_NOTE, _ffmpeg_section(report["ffmpeg"], report["vendored"])]
    parts.append(_section("Python", _python_license_text()))
    for record in records:
        title = f"{record['Name']} {record['Version']} ({record['License']})"
        body = f"{record['URL']}\n\n{record['LicenseText']}"
        if not _missing(record["NoticeText"]):
            body += f"\n\n{record['NoticeText']}"
        parts.append(_section(title, body))
    parts.append(_section("System libraries", _system_text(report["system"])))
    return "\n".join(parts)


def _ffmpeg_section(ffmpeg: dict[str, str], vendored: dict[str, list[str]]) -> str:
    lines = [f"FFmpeg {ffmpeg['version']}: {ffmpeg['license']} as built"]
    lines.append(f"configure {ffmpeg['configuration']}\n")
    for wheel, names in vendored.items():
        lines.append(f"Native libraries inside the {wheel} wheel:")
        lines += [f"  {name}" for name in names]
    return _section("Native libraries", "\n".join(lines))


def _system_text(system: dict[str, str]) -> str:
    """Each system library's Debian package, with that package's copyright file."""
    lines = [
        f"{name}: {package or 'origin unknown'}" for name, package in system.items()
    ]
    for package in sorted(set(system.values()) - {""}):
        copyright_file = Path("/usr/share/doc") / package / "copyright"
        if copyright_file.is_file():
            text = copyright_file.read_text(encoding="utf-8", errors="replace")
            lines.append(_section(f"Debian package {package}", text))
    return "\n".join(lines)


def _python_license_text() -> str:
    """The licence file of the Python the bundle carries (absent on some builds)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    path = Path(sys.base_prefix) / "lib" / version / "LICENSE.txt"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    return "Python Software Foundation License Version 2 (PSF-2.0)."


def _texts_for(expression: str) -> str:
    """The licence texts we keep for the SPDX ids in an expression, or UNKNOWN."""
    texts = [path.read_text(encoding="utf-8") for spdx, path in
             LICENSE_TEXTS.items() if spdx in expression]  # fmt: skip
    return "\n\n".join(texts) or "UNKNOWN"


def _missing(text: str) -> bool:
    return text.strip() in ("", "UNKNOWN")


def _section(title: str, body: str) -> str:
    rule = "=" * 79
    return f"{rule}\n{title}\n{rule}\n\n{body.strip()}\n"
