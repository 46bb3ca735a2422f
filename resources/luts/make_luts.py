"""Write the shipped colour looks as 3D LUTs (.cube, 17 points a side) from numpy maths.

Run `python resources/luts/make_luts.py` after changing a look; the .cube files are
committed, and tests/test_looks.py checks that they are what this script writes.
Every look works on display-referred (gamma-encoded) RGB in 0..1, as editors' LUTs do.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

SIZE = 17
# Rec. 709 luma weights on gamma-encoded values (what video's Y' is made of).
LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722])

Look = Callable[[np.ndarray], np.ndarray]


def luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb @ LUMA_WEIGHTS)[..., None]


def saturate(rgb: np.ndarray, amount: float) -> np.ndarray:
    """Scale colour around its own grey: 0 is grey, 1 unchanged."""
    grey = luma(rgb)
    return grey + (rgb - grey) * amount


def s_curve(values: np.ndarray, strength: float) -> np.ndarray:
    """Contrast around mid grey that never clips: a blend towards smoothstep."""
    smooth = values * values * (3 - 2 * values)
    return values + (smooth - values) * strength


def lift(values: np.ndarray, black: float, white: float = 1.0) -> np.ndarray:
    """Map 0..1 onto black..white: lifted shadows, softened highlights."""
    return black + values * (white - black)


def split_tone(
    rgb: np.ndarray, shadows: tuple[float, float, float], highlights: tuple[float, ...]
) -> np.ndarray:
    """Push shadows and highlights towards two tints, most at a third and two
    thirds of the way up; black and white stay neutral."""
    weight = luma(rgb)
    # x^2 (1 - x) peaks at 4/27, at x = 2/3.
    low = 27 / 4 * (1 - weight) ** 2 * weight
    high = 27 / 4 * weight**2 * (1 - weight)
    return rgb + low * np.array(shadows) + high * np.array(highlights)


def warm(rgb: np.ndarray) -> np.ndarray:
    shifted = rgb * np.array([1.07, 1.0, 0.86]) + np.array([0.02, 0.005, 0.0])
    return s_curve(np.clip(shifted, 0, 1), 0.15)


def cool(rgb: np.ndarray) -> np.ndarray:
    shifted = rgb * np.array([0.9, 0.99, 1.08]) + np.array([0.0, 0.005, 0.02])
    return s_curve(np.clip(shifted, 0, 1), 0.15)


def teal_orange(rgb: np.ndarray) -> np.ndarray:
    toned = split_tone(rgb, (-0.07, 0.02, 0.06), (0.07, 0.015, -0.08))
    return s_curve(np.clip(saturate(toned, 1.1), 0, 1), 0.3)


def black_white(rgb: np.ndarray) -> np.ndarray:
    grey = s_curve(luma(rgb), 0.25)
    return np.repeat(grey, 3, axis=-1)


def pastel(rgb: np.ndarray) -> np.ndarray:
    soft = saturate(rgb, 0.6) * np.array([1.02, 0.99, 0.98]) + np.array(
        [0.02, 0.0, 0.01]
    )
    return lift(np.clip(soft, 0, 1), 0.12, 0.97)


def high_contrast(rgb: np.ndarray) -> np.ndarray:
    return s_curve(np.clip(saturate(rgb, 1.15), 0, 1), 0.8)


def faded(rgb: np.ndarray) -> np.ndarray:
    soft = saturate(rgb, 0.7) * np.array([1.03, 1.0, 0.95])
    return lift(s_curve(np.clip(soft, 0, 1), 0.1), 0.08, 0.93)


def vivid(rgb: np.ndarray) -> np.ndarray:
    return s_curve(np.clip(saturate(rgb, 1.4), 0, 1), 0.2)


def natural(rgb: np.ndarray) -> np.ndarray:
    return s_curve(np.clip(saturate(rgb, 1.05), 0, 1), 0.12)


# Name: (title shown in the app, the look).
LOOKS: dict[str, tuple[str, Look]] = {
    "warm": ("Warm", warm),
    "cool": ("Cool", cool),
    "teal_orange": ("Teal and orange", teal_orange),
    "black_white": ("Black and white", black_white),
    "pastel": ("Pastel", pastel),
    "high_contrast": ("High contrast", high_contrast),
    "faded": ("Faded film", faded),
    "vivid": ("Vivid", vivid),
    "natural": ("Natural", natural),
}


def identity_grid(size: int = SIZE) -> np.ndarray:
    """Every lattice point, red changing fastest, as .cube files list them."""
    steps = np.linspace(0.0, 1.0, size)
    blue, green, red = np.meshgrid(steps, steps, steps, indexing="ij")
    return np.stack([red, green, blue], axis=-1).reshape(-1, 3)


def cube_text(title: str, look: Look, size: int = SIZE) -> str:
    table = np.clip(look(identity_grid(size)), 0.0, 1.0)
    lines = [f'TITLE "{title}"', f"LUT_3D_SIZE {size}"]
    lines += [f"{r:.4f} {g:.4f} {b:.4f}" for r, g, b in table]
    return "\n".join(lines) + "\n"


def write_all(folder: Path) -> list[Path]:
    written = []
    for name, (title, look) in LOOKS.items():
        path = folder / f"{name}.cube"
        path.write_text(cube_text(title, look), encoding="ascii")
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    for path in write_all(target):
        print(path)
