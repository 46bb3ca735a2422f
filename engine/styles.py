"""Style presets: data files in resources/styles that set pacing, transitions and look."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from engine.errors import InvalidJobError
from engine.protocol import SLOWEST_SPEED, TRANSITIONS

SECTION_KINDS = ("quiet", "build", "peak")
TRANSITION_KINDS = TRANSITIONS


@dataclass
class TransitionRule:
    kind: str = "cut"
    beats: float = 0.0


@dataclass
class Grade:
    """A colour look applied in the render pass (YUV lookup, no extra encode)."""

    contrast: float = 1.0
    saturation: float = 1.0
    brightness: float = 0.0
    gamma: float = 1.0
    warmth: float = 0.0
    tint: float = 0.0
    vignette: bool = False
    # A 3D LUT applied after the above: one of resources/luts by name, or a path.
    lut: str = ""

    @property
    def is_neutral(self) -> bool:
        return self == Grade()


@dataclass
class Style:
    name: str
    label: str
    description: str
    beats_per_cut: dict[str, int]
    min_shot_sec: float
    variation: float
    cut_on_downbeat: bool
    transitions: dict[str, TransitionRule]
    downbeat_flash: bool
    grade: Grade
    score_weights: dict[str, float]
    chronological: bool
    changes: list[str] = field(default_factory=list)
    # Shots in a section play at this speed (0.5: slow motion); missing: 1.
    speed: dict[str, float] = field(default_factory=dict)
    # Clean-up filters for every clip (a job can ask for them per clip too).
    stabilize: bool = False
    denoise: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def copy(self) -> Style:
        return copy.deepcopy(self)


def style_names() -> list[str]:
    """Names of the shipped styles, sorted."""
    folder = resources.files("resources") / "styles"
    return sorted(
        entry.name.removesuffix(".json")
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    )


def load_style(name: str) -> Style:
    """Load a shipped style by name.

    Raises:
        InvalidJobError: no style of that name.
    """
    if name not in style_names():
        raise InvalidJobError(
            f"Unknown style {name!r}: choose one of {', '.join(style_names())} "
            "(`montage-ai styles` lists them)."
        )
    text = (resources.files("resources") / "styles" / f"{name}.json").read_text(
        encoding="utf-8"
    )
    return style_from_dict(json.loads(text))


def style_from_dict(data: dict[str, Any]) -> Style:
    values = dict(data)
    values["grade"] = Grade(**values["grade"])
    values["transitions"] = {
        kind: TransitionRule(**rule) for kind, rule in values["transitions"].items()
    }
    values.pop("changes", None)
    style = Style(**values)
    _check_style(style)
    return style


def _check_style(style: Style) -> None:
    for kind in SECTION_KINDS:
        if style.beats_per_cut.get(kind, 0) < 1:
            raise InvalidJobError(f"Style {style.name}: beats_per_cut.{kind} < 1.")
        rule = style.transitions.get(kind)
        if rule is None or rule.kind not in TRANSITION_KINDS:
            raise InvalidJobError(f"Style {style.name}: bad transition for {kind}.")
        if not SLOWEST_SPEED <= style.speed.get(kind, 1.0) <= 1.0:
            raise InvalidJobError(
                f"Style {style.name}: speed.{kind} must be {SLOWEST_SPEED} to 1."
            )
