"""The AI director: an OpenAI-compatible chat endpoint (Ollama, LM Studio, a hosted
one) reads the prompt into the same style changes as the offline interpreter.

Optional and never required: the answer is checked against a JSON schema of the
style's parameters and ranges, and a slow, unreachable or nonsense-answering
endpoint gives way to the offline interpreter within a time budget. The API key
comes from the environment only and is never logged or written.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema
import tenacity

from engine.luts import lut_names
from engine.prompt import MAX_BEATS_PER_CUT, interpret_prompt
from engine.protocol import (
    DIRECTOR_KEY_ENV,
    SLOWEST_SPEED,
    Event,
    JobSpec,
    make_warning,
)
from engine.styles import (
    SECTION_KINDS,
    TRANSITION_KINDS,
    Style,
    TransitionRule,
    load_style,
    style_names,
)

log = logging.getLogger(__name__)

Emit = Callable[[Event], None]

# The whole exchange, tries and waits included; then the offline reading is used.
BUDGET_SEC = 20.0
# Overrides BUDGET_SEC (tests, a slow local model).
BUDGET_ENV = "MONTAGE_AI_DIRECTOR_TIMEOUT_SEC"
ATTEMPTS = 3
REQUEST_TIMEOUT_SEC = 10.0
CONNECT_TIMEOUT_SEC = 3.0
OFFLINE = "offline"
AI = "ai"
FALLBACK_WARNING = "director_fallback"
# HTTP statuses worth another try; any other error status is a setting to fix.
RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}

# Style fields an answer sets directly, by the same name.
CHANGED_AS_IS = (
    "min_shot_sec",
    "variation",
    "cut_on_downbeat",
    "downbeat_flash",
    "stabilize",
    "denoise",
)
_GRADE_RANGES = {
    "contrast": (0.5, 2.0),
    "saturation": (0.0, 2.0),
    "brightness": (-0.3, 0.3),
    "gamma": (0.5, 2.0),
    "warmth": (-1.0, 1.0),
    "tint": (-1.0, 1.0),
}


def _number(low: float, high: float) -> dict[str, Any]:
    return {"type": "number", "minimum": low, "maximum": high}


def _per_section(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict.fromkeys(SECTION_KINDS, schema),
        "additionalProperties": False,
    }


def changes_schema() -> dict[str, Any]:
    """The JSON schema of an answer: style parameters to change, each in range."""
    grade = {name: _number(*limits) for name, limits in _GRADE_RANGES.items()}
    grade["vignette"] = {"type": "boolean"}
    grade["lut"] = {"enum": ["", *lut_names()]}
    transition = {
        "type": "object",
        "properties": {
            "kind": {"enum": list(TRANSITION_KINDS)},
            "beats": _number(0, 4),
        },
        "required": ["kind"],
        "additionalProperties": False,
    }
    weights = dict.fromkeys(("motion", "sharpness", "exposure"), _number(0, 1))
    return {
        "type": "object",
        "properties": {
            "base_style": {"enum": style_names()},
            "beats_per_cut": _per_section(
                {"type": "integer", "minimum": 1, "maximum": MAX_BEATS_PER_CUT}
            ),
            "min_shot_sec": _number(0.1, 4.0),
            "variation": _number(0, 1),
            "cut_on_downbeat": {"type": "boolean"},
            "transitions": _per_section(transition),
            "downbeat_flash": {"type": "boolean"},
            "chronological": {"type": "boolean"},
            "speed": _per_section(_number(SLOWEST_SPEED, 1.0)),
            "stabilize": {"type": "boolean"},
            "denoise": {"type": "boolean"},
            "score_weights": _object(weights),
            "grade": _object(grade),
            "summary": {"type": "string", "maxLength": 300},
        },
        "additionalProperties": False,
    }


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False}


INSTRUCTIONS = """You direct a music montage made from a person's video clips.
Read their description of the mood and answer with one JSON object that changes
the style parameters below, only those the description asks for, following the
JSON schema given. Parameters:
- base_style: start from another style, by name: {styles}
- beats_per_cut: beats each shot lasts in the song's quiet, build and peak
  sections (1 to 16; more is calmer)
- min_shot_sec: the shortest shot; variation: 0 to 1, how often a shot is
  shorter or longer than the rule; cut_on_downbeat: long shots end on a bar
- transitions: per section, kind ({transitions}) and beats (its length in
  beats)
- speed: per section, how fast shots play (0.5 is slow motion; 1 is normal)
- stabilize, denoise: steady shaky footage, clean noisy footage (slower)
- downbeat_flash: white flashes on downbeats; chronological: shots in the
  order they were filmed
- score_weights: what makes a shot good: motion, sharpness, exposure (0 to 1)
- grade: contrast, saturation (0 is black and white, with lut black_white),
  brightness, gamma, warmth (+ warmer, - cooler), tint, vignette, lut (a colour
  look: {luts})
- summary: what you changed, in one short sentence
The current style is:
{style}
The JSON schema of your answer:
{schema}"""


@dataclass(frozen=True)
class DirectorOutcome:
    """The style to plan with, which interpreter read the prompt, and a note why."""

    style: Style
    interpreter: str
    note: str = ""


@dataclass(frozen=True)
class DirectorSettings:
    url: str
    model: str
    key: str = ""
    budget_sec: float = BUDGET_SEC

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).netloc or self.url

    @property
    def endpoint(self) -> str:
        """POST here: {url}/chat/completions, unless the URL already names it."""
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else url + "/chat/completions"


class DirectorError(Exception):
    """Why the endpoint's answer cannot be used: a reason and what to do."""

    def __init__(self, reason: str, advice: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.advice = advice


class RetryableDirectorError(DirectorError):
    """A failure another try may not repeat: a timeout, a 5xx, a garbled answer."""


def settings_from_job(spec: JobSpec) -> DirectorSettings | None:
    """The job's endpoint with the key from the environment; None when unset."""
    if not spec.director_url:
        return None
    try:
        budget_sec = float(os.environ.get(BUDGET_ENV, BUDGET_SEC))
    except ValueError:
        budget_sec = BUDGET_SEC
    return DirectorSettings(
        url=spec.director_url,
        model=spec.director_model,
        key=os.environ.get(DIRECTOR_KEY_ENV, ""),
        budget_sec=max(0.5, budget_sec),
    )


class DirectorRequest:
    """The prompt read by the endpoint in a background thread while the clips are
    analysed; outcome() waits at most what is left of the budget."""

    def __init__(
        self, prompt: str, base: Style, settings: DirectorSettings | None
    ) -> None:
        # The offline reading comes first: it is the fallback, and it reports a
        # mistake in the job before any long analysis.
        self.offline = interpret_prompt(prompt, base)
        self.settings = settings
        self._outcome: DirectorOutcome | None = None
        self._deadline = time.monotonic() + (settings.budget_sec if settings else 0)
        self._thread: threading.Thread | None = None
        if settings is not None and prompt.strip():
            self._thread = threading.Thread(
                target=self._run, args=(prompt, base), name="ai-director", daemon=True
            )
            self._thread.start()

    def _run(self, prompt: str, base: Style) -> None:
        assert self.settings is not None
        try:
            self._outcome = read_prompt(prompt, base, self.offline, self.settings)
        except Exception as error:  # A bug here must not cost the render.
            log.exception("The AI director failed")
            reason = DirectorError(f"could not be used ({type(error).__name__})")
            self._outcome = _fallback(self.offline, self.settings, reason)

    def outcome(self, emit: Emit | None = None) -> DirectorOutcome:
        """The AI director's style, or the offline one with the reason, which goes
        out as a warning event through emit."""
        outcome = self._wait()
        if emit is not None and outcome.note and outcome.interpreter == OFFLINE:
            emit(make_warning(FALLBACK_WARNING, outcome.note))
        return outcome

    def _wait(self) -> DirectorOutcome:
        if self._thread is None or self.settings is None:
            return DirectorOutcome(self.offline, OFFLINE)
        self._thread.join(max(0.0, self._deadline - time.monotonic()) + 0.25)
        if self._outcome is not None:
            return self._outcome
        reason = DirectorError(
            f"did not answer within {self.settings.budget_sec:g} s",
            "Use a faster model, or clear the AI director's URL in Settings.",
        )
        return _fallback(self.offline, self.settings, reason)


def start_director(spec: JobSpec, base: Style) -> DirectorRequest:
    """Start reading the job's prompt; the offline reading when no endpoint is set."""
    return DirectorRequest(spec.prompt, base, settings_from_job(spec))


def read_prompt(
    prompt: str, base: Style, offline: Style, settings: DirectorSettings
) -> DirectorOutcome:
    """Ask the endpoint, with retries, within the budget; never raises."""
    log.info("Asking the AI director %s (model %s)", settings.endpoint, settings.model)
    try:
        changes = ask_for_changes(prompt, base, settings)
        style = apply_changes(base, changes, settings.model)
    except DirectorError as error:
        return _fallback(offline, settings, error)
    note = f"The AI director ({settings.model} at {settings.host}) read the prompt."
    log.info("%s Changes: %s", note, "; ".join(style.changes))
    return DirectorOutcome(style, AI, note)


def _fallback(
    offline: Style, settings: DirectorSettings, error: DirectorError
) -> DirectorOutcome:
    note = (
        f"The AI director at {settings.host} {error.reason}; the prompt was read by "
        f"the offline rules instead. {error.advice}"
    ).strip()
    if settings.key:
        note = note.replace(settings.key, "***")
    log.warning(note)
    return DirectorOutcome(offline, OFFLINE, note)


def ask_for_changes(
    prompt: str, base: Style, settings: DirectorSettings
) -> dict[str, Any]:
    """The endpoint's answer as validated changes; DirectorError once it gives up."""
    deadline = time.monotonic() + settings.budget_sec
    body = _request_body(prompt, base, settings.model)
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(ATTEMPTS)
        | tenacity.stop_before_delay(settings.budget_sec),
        wait=tenacity.wait_exponential(multiplier=0.25, max=2),
        retry=tenacity.retry_if_exception_type(RetryableDirectorError),
        before_sleep=lambda state: log.info(
            "AI director: try %d failed, trying again", state.attempt_number
        ),
        reraise=True,
    )
    headers = {"Authorization": f"Bearer {settings.key}"} if settings.key else {}
    with httpx.Client(headers=headers, follow_redirects=False) as client:
        try:
            answer: dict[str, Any] = retrying(
                _ask_once, client, settings.endpoint, body, deadline
            )
        except DirectorError as error:
            tries = retrying.statistics.get("attempt_number", 1)
            if tries > 1:
                # Each try has the time the budget leaves: name the last one.
                error.reason += f" (the last of {tries} tries)"
            raise
    return answer


def _request_body(prompt: str, base: Style, model: str) -> dict[str, Any]:
    schema = changes_schema()
    current = {
        key: value
        for key, value in base.to_dict().items()
        if key in schema["properties"]
    }
    instructions = INSTRUCTIONS.format(
        styles=", ".join(style_names()),
        transitions=", ".join(TRANSITION_KINDS),
        luts=", ".join(lut_names()),
        style=json.dumps(current),
        schema=json.dumps(schema),
    )
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": instructions},
            {"role": "user", "content": prompt},
        ],
        "temperature": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "style_changes", "schema": schema},
        },
    }


def _ask_once(
    client: httpx.Client, endpoint: str, body: dict[str, Any], deadline: float
) -> dict[str, Any]:
    left_sec = deadline - time.monotonic()
    if left_sec <= 0.05:
        raise DirectorError("ran out of time between tries")
    timeout = min(REQUEST_TIMEOUT_SEC, left_sec)
    try:
        response = client.post(
            endpoint,
            json=body,
            timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT_SEC, timeout)),
        )
    except httpx.TimeoutException as error:
        raise RetryableDirectorError(
            f"did not answer within {timeout:.1f} s",
            "Use a faster model, or clear the AI director's URL in Settings.",
        ) from error
    except httpx.TransportError as error:
        raise RetryableDirectorError(
            f"could not be reached ({type(error).__name__})",
            "Check that the server (Ollama, LM Studio) runs and the URL in Settings "
            "is right.",
        ) from error
    _check_status(response, body)
    return _changes_from(response)


def _check_status(response: httpx.Response, body: dict[str, Any]) -> None:
    status = response.status_code
    if status < 300:
        return
    if status in (400, 422) and body.pop("response_format", None) is not None:
        # Some servers know no structured output: ask again in words only.
        raise RetryableDirectorError(f"refused the JSON schema (HTTP {status})")
    if status in RETRY_STATUSES:
        raise RetryableDirectorError(
            f"failed (HTTP {status})",
            "Its own log says why; or clear the AI director's URL in Settings.",
        )
    advice = {
        401: "Check the API key in Settings (or MONTAGE_AI_DIRECTOR_KEY).",
        403: "Check the API key in Settings (or MONTAGE_AI_DIRECTOR_KEY).",
        404: "Check the model name, and that the URL ends in /v1.",
    }.get(status, "Check the AI director's URL and model in Settings.")
    raise DirectorError(f"refused the request (HTTP {status})", advice)


def _changes_from(response: httpx.Response) -> dict[str, Any]:
    """The first choice's message content, parsed and validated."""
    try:
        content = response.json()["choices"][0]["message"]["content"]
        changes = json.loads(_without_code_fence(str(content)))
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise RetryableDirectorError(
            "answered with something that is not the style JSON asked for",
            "Choose a model that follows instructions (one with JSON output).",
        ) from error
    try:
        jsonschema.validate(changes, changes_schema())
    except jsonschema.ValidationError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "the answer"
        raise RetryableDirectorError(
            f"answered with style changes out of the schema ({where}: "
            f"{error.message[:120]})",
            "Choose a model that follows instructions (one with JSON output).",
        ) from error
    _check_weights(changes)
    result: dict[str, Any] = changes
    return result


def _without_code_fence(text: str) -> str:
    """Models often wrap JSON in ```json ... ```; the JSON is inside."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[-1].rsplit("```", 1)[0]
    return text


def _check_weights(changes: dict[str, Any]) -> None:
    weights = changes.get("score_weights")
    if weights and sum(weights.values()) <= 0:
        raise RetryableDirectorError("answered with score weights that add up to 0")


# The look that keeps a grade of saturation 0 grey (a colour look would tint it).
BLACK_AND_WHITE_LUT = "black_white"


def apply_changes(base: Style, changes: dict[str, Any], model: str) -> Style:
    """The base style (or the one the answer names) with the answer's values;
    `changes` lists them in words, as the offline interpreter's does."""
    named = changes.get("base_style")
    style = load_style(named) if named and named != base.name else base.copy()
    style.changes = [_headline(changes, model)]
    if named and named != base.name:
        style.changes.append(f"uses the {style.label} style")
    style.beats_per_cut.update(changes.get("beats_per_cut", {}))
    for kind, rule in changes.get("transitions", {}).items():
        style.transitions[kind] = TransitionRule(rule["kind"], rule.get("beats", 0.0))
    for name in CHANGED_AS_IS:
        if name in changes:
            setattr(style, name, changes[name])
    style.speed = {**style.speed, **changes.get("speed", {})}
    if "chronological" in changes:
        style.chronological = changes["chronological"]
    style.score_weights = {**style.score_weights, **changes.get("score_weights", {})}
    grade = changes.get("grade", {})
    for name, value in grade.items():
        setattr(style.grade, name, value)
    style.changes += _described(changes)
    if grade.get("saturation") == 0 and "lut" not in grade and style.grade.lut:
        # The look's LUT comes after the saturation and would colour the grey.
        style.grade.lut = BLACK_AND_WHITE_LUT
        style.changes.append(f"look {BLACK_AND_WHITE_LUT} for the black and white")
    return style


def _headline(changes: dict[str, Any], model: str) -> str:
    summary = " ".join(str(changes.get("summary", "")).split())[:120]
    return f"AI director ({model}): {summary or 'read the prompt'}"


def _described(changes: dict[str, Any]) -> list[str]:
    words = []
    for group in ("beats_per_cut", "speed", "score_weights", "grade"):
        values = changes.get(group, {})
        if values:
            listed = ", ".join(f"{name} {value}" for name, value in values.items())
            words.append(f"{group.replace('_', ' ')}: {listed}")
    for kind, rule in changes.get("transitions", {}).items():
        words.append(f"{rule['kind']} in the {kind} section")
    for name in CHANGED_AS_IS:
        if name in changes:
            words.append(f"{name.replace('_', ' ')}: {changes[name]}")
    if "chronological" in changes:
        order = "as filmed" if changes["chronological"] else "in any order"
        words.append(f"shots {order}")
    return words
