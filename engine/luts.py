"""Colour looks as 3D LUTs (.cube): ours in resources/luts, or a file of the user's.

The render applies a LUT with libavfilter's lut3d in each source's filter graph, in
the same pass as scaling and grading (never as an extra encode). This module names,
finds and checks them, and writes the filter with its path escaped.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from engine.errors import InvalidJobError

log = logging.getLogger(__name__)

# A job's `lut` that turns off the style's LUT.
NO_LUT = "none"
LUT_SUFFIX = ".cube"
# FFmpeg's lut3d reads cubes of 2 to 256 points a side (MAX_LEVEL).
MIN_POINTS = 2
MAX_POINTS = 256
# Tetrahedral interpolation is what grading applications use; trilinear is 10 %
# faster and visibly softer on strong looks.
INTERPOLATION = "tetrahedral"


@dataclass(frozen=True)
class CubeLut:
    """A parsed .cube: points a side and the table, red changing fastest."""

    title: str
    points: int
    table: np.ndarray
    domain_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    domain_max: tuple[float, float, float] = (1.0, 1.0, 1.0)


def lut_names() -> list[str]:
    """Names of the shipped LUTs, sorted."""
    folder = resources.files("resources") / "luts"
    return sorted(
        entry.name.removesuffix(LUT_SUFFIX)
        for entry in folder.iterdir()
        if entry.name.endswith(LUT_SUFFIX)
    )


def lut_path(value: str) -> Path:
    """The file a job's `lut` names: one of ours by name, else the user's path."""
    if value in lut_names():
        return Path(str(resources.files("resources") / "luts" / f"{value}{LUT_SUFFIX}"))
    return Path(value).expanduser().absolute()


def check_lut(value: str) -> str:
    """A job's or style's `lut` checked and made absolute: "", a name, or a path.

    Raises:
        InvalidJobError: no LUT of that name, or a file that is not a 3D .cube.
    """
    if value in ("", NO_LUT):
        return ""
    if value in lut_names():
        return value
    path = lut_path(value)
    if path.suffix.lower() != LUT_SUFFIX and not path.exists():
        raise InvalidJobError(
            f"Unknown look {value!r}: choose one of {', '.join(lut_names())}, "
            f"{NO_LUT!r}, or the path of a .cube file.",
            value,
        )
    read_cube(path)
    return str(path)


def read_cube(path: Path) -> CubeLut:
    """Parse a .cube file (Adobe/Resolve 3D LUT text).

    Raises:
        InvalidJobError: unreadable, or not a well-formed 3D LUT; names the file
            and the line.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as error:
        raise _cube_error(path, "the file is not there", "Check the path") from error
    except (OSError, UnicodeDecodeError) as error:
        raise _cube_error(path, f"it cannot be read as text ({error})") from error
    return _parse_cube(path, text)


def _parse_cube(path: Path, text: str) -> CubeLut:
    title, points = "", 0
    domain = [(0.0, 0.0, 0.0), (1.0, 1.0, 1.0)]
    rows: list[tuple[float, float, float]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "TITLE":
            title = rest.strip().strip('"')
        elif keyword == "LUT_1D_SIZE":
            raise _cube_error(path, "it is a 1D LUT; only 3D LUTs can be applied")
        elif keyword == "LUT_3D_SIZE":
            points = _points(path, rest, number)
        elif keyword in ("DOMAIN_MIN", "DOMAIN_MAX"):
            domain[keyword == "DOMAIN_MAX"] = _triple(path, rest.split(), number)
        elif re.fullmatch(r"[A-Z][A-Z0-9_]*", keyword):
            continue  # LUT_3D_INPUT_RANGE and vendors' keywords
        else:
            rows.append(_triple(path, line.split(), number))
    return _checked_cube(path, title, points, rows, domain)


def _checked_cube(
    path: Path,
    title: str,
    points: int,
    rows: list[tuple[float, float, float]],
    domain: list[tuple[float, float, float]],
) -> CubeLut:
    if not points:
        raise _cube_error(path, "it has no LUT_3D_SIZE line")
    if len(rows) != points**3:
        why = "the file may be cut short" if len(rows) < points**3 else (
            "too many: its LUT_3D_SIZE line may be wrong")  # fmt: skip
        raise _cube_error(
            path, f"it has {len(rows)} colours where a {points}-point cube needs "
            f"{points**3} ({why})",
        )  # fmt: skip
    if any(low >= high for low, high in zip(*domain, strict=True)):
        raise _cube_error(path, "its DOMAIN_MIN is not below its DOMAIN_MAX")
    return CubeLut(title or path.stem, points, np.array(rows), domain[0], domain[1])


def _points(path: Path, text: str, number: int) -> int:
    try:
        points = int(text.strip())
    except ValueError:
        points = 0
    if not MIN_POINTS <= points <= MAX_POINTS:
        raise _cube_error(
            path, f"line {number}: LUT_3D_SIZE must be {MIN_POINTS} to {MAX_POINTS}"
        )
    return points


def _triple(path: Path, parts: list[str], number: int) -> tuple[float, float, float]:
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != 3 or not all(math.isfinite(value) for value in values):
        raise _cube_error(path, f"line {number} is not three numbers")
    return values[0], values[1], values[2]


def _cube_error(
    path: Path, cause: str, fix: str = "Export it again as a 3D .cube"
) -> InvalidJobError:
    return InvalidJobError(
        f"The LUT {path.name} could not be used: {cause}. {fix}, or choose one of "
        "the looks that come with Montage AI.",
        str(path),
    )


def lut_filter(value: str) -> tuple[str, str]:
    """The lut3d filter (name, arguments) for a checked `lut` value."""
    return "lut3d", f"file={filter_quote(str(lut_path(value)))}:interp={INTERPOLATION}"


def filter_quote(text: str) -> str:
    """A value quoted for a libavfilter option string: spaces, ':', '=', ',',
    backslashes and non-ASCII letters pass inside '...'; a quote closes, is escaped
    and reopens."""
    return "'" + text.replace("'", "'\\''") + "'"


def lut_title(value: str) -> str:
    """A LUT's title for messages: its TITLE line, else its file name."""
    try:
        return read_cube(lut_path(value)).title
    except InvalidJobError:
        return Path(value).name
