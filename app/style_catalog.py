"""The editing styles the user can pick, read from resources/styles/*.json.

Only the name, label and description matter to the window; the engine reads the rest.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib.resources import files

log = logging.getLogger(__name__)

DEFAULT_STYLE = "dynamic"


@dataclass(frozen=True)
class StyleChoice:
    name: str
    label: str
    description: str


def load_style_choices() -> list[StyleChoice]:
    """Every readable style, the default first and the rest by label."""
    choices = []
    for entry in files("resources").joinpath("styles").iterdir():
        if not entry.name.endswith(".json"):
            continue
        try:
            data = json.loads(entry.read_text(encoding="utf-8"))
            choices.append(
                StyleChoice(
                    name=str(data["name"]),
                    label=str(data.get("label") or data["name"]),
                    description=str(data.get("description", "")),
                )
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("Skipped the style file %s: %s", entry.name, error)
    return sorted(
        choices, key=lambda choice: (choice.name != DEFAULT_STYLE, choice.label)
    )
