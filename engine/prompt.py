"""Offline, deterministic reading of a free-text creative prompt into style settings."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from engine.styles import SECTION_KINDS, Style, TransitionRule, load_style, style_names

MAX_BEATS_PER_CUT = 16


def _rules() -> list[dict[str, Any]]:
    text = (resources.files("resources") / "prompt_rules.json").read_text("utf-8")
    rules: list[dict[str, Any]] = json.loads(text)["rules"]
    return rules


def _mentions(prompt: str, phrase: str) -> bool:
    pattern = r"(?<![\w&])" + re.escape(phrase.lower()) + r"(?![\w&])"
    return re.search(pattern, prompt) is not None


def interpret_prompt(prompt: str, style: Style) -> Style:
    """Apply a prompt to a style; the result's `changes` says what changed, in words.

    A style named in the prompt ("like hitchcock", "wes anderson") becomes the base;
    then each matching rule of resources/prompt_rules.json applies once, in order.
    """
    text = " ".join(prompt.lower().split())
    if not text:
        return style
    result = _named_style(text, style)
    for rule in _rules():
        word = next((w for w in rule["words"] if _mentions(text, w)), None)
        if word is not None:
            _apply_rule(result, rule)
            result.changes.append(f'"{word}": {rule["says"]}')
    return result


def _named_style(text: str, style: Style) -> Style:
    for name in style_names():
        if name != style.name and _mentions(text, name.replace("_", " ")):
            named = load_style(name)
            named.changes.append(
                f'"{name.replace("_", " ")}": uses the {named.label} style'
            )
            return named
    return style.copy()


def _apply_rule(style: Style, rule: dict[str, Any]) -> None:
    if "pace" in rule:
        for kind in SECTION_KINDS:
            beats = round(style.beats_per_cut[kind] * rule["pace"])
            style.beats_per_cut[kind] = max(1, min(MAX_BEATS_PER_CUT, beats))
        style.min_shot_sec = min(style.min_shot_sec * rule["pace"], 4.0)
    if "transition" in rule:
        beats = rule.get("transition_beats", 0.0)
        for kind in SECTION_KINDS:
            style.transitions[kind] = TransitionRule(rule["transition"], beats)
    if "downbeat_flash" in rule:
        style.downbeat_flash = bool(rule["downbeat_flash"])
    if "speed" in rule:
        style.speed = dict(rule["speed"])
    if "chronological" in rule:
        style.chronological = bool(rule["chronological"])
    if "weights" in rule:
        style.score_weights = dict(rule["weights"])
    grade = style.grade
    for name, value in rule.get("grade", {}).items():
        setattr(grade, name, value)
    for name, value in rule.get("grade_mul", {}).items():
        setattr(grade, name, getattr(grade, name) * value)
    for name, value in rule.get("grade_add", {}).items():
        setattr(grade, name, getattr(grade, name) + value)
