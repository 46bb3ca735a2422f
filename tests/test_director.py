"""The AI director against a stand-in endpoint on 127.0.0.1 that answers well,
slowly, with errors and with garbage: the render always goes on, within the
budget, and says which interpreter read the prompt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from engine.director import (
    AI,
    BLACK_AND_WHITE_LUT,
    FALLBACK_WARNING,
    OFFLINE,
    DirectorRequest,
    DirectorSettings,
    apply_changes,
    changes_schema,
)
from engine.prompt import interpret_prompt
from engine.protocol import (
    DIRECTOR_KEY_ENV,
    EventKind,
    JobSpec,
    JobSpecError,
    make_warning,
    parse_event,
)
from engine.styles import load_style
from tests.audio_media import write_click_track
from tests.director_server import ChatServer, chat_server
from tests.media import write_marker_clip

BUDGET_SEC = 1.5
SECRET = "sk-test-3f9c1d7e-never-in-a-file"
# What the offline rules make of "slow, black and white" from the dynamic style.
SLOW_MONOCHROME = {
    "beats_per_cut": {"quiet": 8, "build": 4, "peak": 2},
    "min_shot_sec": 0.7,
    "grade": {"saturation": 0.0, "lut": "black_white"},
    "summary": "slower, in black and white",
}


def ask(
    server: ChatServer, prompt: str = "slow, black and white", key: str = ""
) -> Any:
    settings = DirectorSettings(server.url, "test-model", key, BUDGET_SEC)
    started = time.monotonic()
    events: list[Any] = []
    outcome = DirectorRequest(prompt, load_style("dynamic"), settings).outcome(
        events.append
    )
    return outcome, time.monotonic() - started, events


def test_a_good_answer_gives_the_style_the_offline_rules_would() -> None:
    with chat_server("good", SLOW_MONOCHROME) as server:
        outcome, _, events = ask(server)
    offline = interpret_prompt("slow, black and white", load_style("dynamic"))

    assert outcome.interpreter == AI
    assert "test-model" in outcome.note and events == []
    ai_values, offline_values = outcome.style.to_dict(), offline.to_dict()
    assert ai_values.pop("changes")[0].startswith("AI director (test-model)")
    offline_values.pop("changes")
    assert ai_values == offline_values
    # What was asked: the model, the prompt, the schema, at /v1/chat/completions.
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["model"] == "test-model"
    assert request["body"]["messages"][-1]["content"] == "slow, black and white"
    schema = request["body"]["response_format"]["json_schema"]["schema"]
    assert schema == changes_schema()


@pytest.mark.parametrize(
    ("mode", "changes", "tries", "reason"),
    [
        ("slow", SLOW_MONOCHROME, 1, "did not answer within"),
        ("error", {}, 3, "HTTP 500"),
        ("garbage", {}, 3, "not the style JSON"),
        ("prose", {}, 3, "not the style JSON"),
        ("good", {"grade": {"saturation": 5.0}}, 3, "grade/saturation"),
        ("good", {"beats_per_cut": {"quiet": 0}}, 3, "beats_per_cut/quiet"),
        ("good", {"lut": "teal"}, 3, "out of the schema"),
        ("good", {"base_style": "vaporwave"}, 3, "base_style"),
        ("unauthorized", {}, 1, "HTTP 401"),
    ],
)
def test_a_bad_endpoint_gives_way_to_the_offline_rules_within_the_budget(
    mode: str, changes: dict[str, Any], tries: int, reason: str
) -> None:
    with chat_server(mode, changes) as server:
        outcome, elapsed_sec, events = ask(server)
        asked = len(server.requests)
    offline = interpret_prompt("slow, black and white", load_style("dynamic"))

    assert elapsed_sec < BUDGET_SEC + 0.5
    assert outcome.interpreter == OFFLINE
    assert outcome.style == offline
    assert reason in outcome.note and "offline rules" in outcome.note
    assert asked == tries
    assert [event.data["code"] for event in events] == [FALLBACK_WARNING]
    assert events[0].data["message"] == outcome.note


def test_an_unreachable_endpoint_gives_way_at_once() -> None:
    with chat_server() as server:
        url = server.url  # the port is closed once the server has gone
    settings = DirectorSettings(url, "test-model", "", BUDGET_SEC)
    started = time.monotonic()
    outcome = DirectorRequest("calm", load_style("dynamic"), settings).outcome()

    assert outcome.interpreter == OFFLINE
    assert "could not be reached" in outcome.note
    assert time.monotonic() - started < BUDGET_SEC + 0.5


def test_fenced_json_and_servers_without_structured_output_still_work() -> None:
    with chat_server("fenced", SLOW_MONOCHROME) as server:
        assert ask(server)[0].interpreter == AI
    with chat_server("no_schema", SLOW_MONOCHROME) as server:
        outcome = ask(server)[0]
        first, second = server.requests
    assert outcome.interpreter == AI
    assert "response_format" in first["body"]
    assert "response_format" not in second["body"]


def test_the_key_goes_to_the_endpoint_only_as_a_bearer_token() -> None:
    with chat_server("unauthorized") as server:
        outcome = ask(server, key=SECRET)[0]
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in outcome.note
    assert "API key" in outcome.note


def test_without_an_endpoint_the_offline_rules_read_the_prompt() -> None:
    outcome = DirectorRequest("calm", load_style("dynamic"), None).outcome()
    assert outcome.interpreter == OFFLINE and outcome.note == ""
    assert outcome.style == interpret_prompt("calm", load_style("dynamic"))


def test_another_base_style_and_every_parameter_apply() -> None:
    changes = {
        "base_style": "hitchcock",
        "beats_per_cut": {"peak": 3},
        "transitions": {"build": {"kind": "dip_white", "beats": 1}},
        "downbeat_flash": True,
        "chronological": True,
        "variation": 0.5,
        "score_weights": {"motion": 0.9},
        "grade": {"vignette": False, "warmth": -0.4},
    }
    style = apply_changes(load_style("dynamic"), changes, "m")
    assert style.name == "hitchcock" and style.beats_per_cut["peak"] == 3
    assert (style.transitions["build"].kind, style.transitions["build"].beats) == (
        "dip_white",
        1,
    )
    assert style.downbeat_flash and style.chronological and style.variation == 0.5
    assert style.score_weights["motion"] == 0.9
    assert (style.grade.vignette, style.grade.warmth) == (False, -0.4)
    assert any("Hitchcock" in change for change in style.changes)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/v1",
        "localhost:11434",
        "http://user:key@host/v1",
        "http://h/v1?key=1",
    ],
)
def test_a_director_url_that_could_leak_or_not_work_is_refused(url: str) -> None:
    with pytest.raises(JobSpecError, match="AI director URL"):
        JobSpec(clips=["/a.mp4"], music="/s.wav", output="/o.mp4", director_url=url,
                director_model="m")  # fmt: skip


def test_a_director_url_needs_a_model() -> None:
    with pytest.raises(JobSpecError, match="model"):
        JobSpec(
            clips=["/a.mp4"],
            music="/s.wav",
            output="/o.mp4",
            director_url="http://h/v1",
        )


def test_the_cli_puts_url_and_model_in_the_job() -> None:
    from engine.cli import build_parser

    args = build_parser().parse_args(
        [
            *("render", "a.mp4", "--music", "s.wav", "-o", "o.mp4"),
            *("--director-url", "http://localhost:11434/v1"),
            *("--director-model", "llama"),
        ]
    )
    assert (args.director_url, args.director_model) == (
        "http://localhost:11434/v1",
        "llama",
    )


# End to end: the engine subprocess with an endpoint, as the app runs it.


@pytest.fixture(scope="module")
def inputs(media_dir: Path) -> dict[str, Path]:
    folder = media_dir / "director"
    folder.mkdir(exist_ok=True)
    write_click_track(folder / "song.wav", bpm=120, duration_sec=3.0)
    clip = folder / "colours.mp4"
    write_marker_clip(clip, frames=75, fps=25, size=(160, 90), cuts=[25, 50])
    return {"clip": clip, "song": folder / "song.wav"}


def render_with(
    server: ChatServer, inputs: dict[str, Path], folder: Path
) -> tuple[list[Any], str, Path]:
    """Render "like an old photograph" (no offline rule knows it) through the
    endpoint, with the key in the environment; (events, stderr, output)."""
    output = folder / "montage.mp4"
    job = JobSpec(
        clips=[str(inputs["clip"])],
        music=str(inputs["song"]),
        output=str(output),
        prompt="like an old photograph",
        quality="preview",
        size=(160, 90),
        seed=1,
        director_url=server.url,
        director_model="test-model",
    )
    job_path = folder / "job.json"
    job_path.write_text(job.to_json(), encoding="utf-8")
    environment = dict(os.environ)
    environment.update(
        {DIRECTOR_KEY_ENV: SECRET, "MONTAGE_AI_DIRECTOR_TIMEOUT_SEC": str(BUDGET_SEC)}
    )
    environment["MONTAGE_AI_LOG_LEVEL"] = "DEBUG"
    result = subprocess.run(
        [sys.executable, "-m", "engine", str(job_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    everything = result.stdout + result.stderr + job_path.read_text(encoding="utf-8")
    assert SECRET not in everything
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    events = [parse_event(line) for line in result.stdout.splitlines()]
    return events, result.stderr, output


def colourfulness(path: Path) -> float:
    """Mean distance of the chroma planes from grey (128), over every frame."""
    distances = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            planes = frame.to_ndarray(format="yuv420p").astype(np.float32)
            chroma = planes[frame.height :]
            distances.append(float(np.abs(chroma - 128).mean()))
    return float(np.mean(distances))


def summary_of(events: list[Any]) -> dict[str, Any]:
    finished = [event for event in events if event.kind is EventKind.FINISHED]
    summary: dict[str, Any] = finished[0].data["summary"]
    return summary


@pytest.mark.parametrize("mode", ["good", "garbage", "slow"])
def test_the_render_follows_the_endpoint_or_the_offline_rules(
    mode: str, inputs: dict[str, Path], tmp_path: Path
) -> None:
    # The style's own look (a LUT) follows the grade: the answer replaces it too.
    answer = {"grade": {"saturation": 0.0, "lut": "black_white"}}
    with chat_server(mode, answer) as server:
        events, _, output = render_with(server, inputs, tmp_path)
    summary = summary_of(events)
    warnings = [event.data for event in events if event.kind is EventKind.WARNING]
    fallbacks = [data for data in warnings if data["code"] == FALLBACK_WARNING]

    if mode == "good":
        assert summary["prompt_interpreter"] == AI
        assert colourfulness(output) < 1.5  # black and white, as the AI answered
        assert fallbacks == []
        assert summary["prompt_changes"][1] == "grade: saturation 0.0, lut black_white"
    else:
        assert summary["prompt_interpreter"] == OFFLINE
        assert colourfulness(output) > 10  # the offline rules left the colour
        assert len(fallbacks) == 1 and "offline rules" in fallbacks[0]["message"]
    if mode == "good":
        assert "test-model" in summary["prompt_note"]
    else:
        assert summary["prompt_note"] == fallbacks[0]["message"]


def test_a_fallback_warning_is_a_valid_event() -> None:
    line = make_warning(
        FALLBACK_WARNING, "The AI director at h did not answer"
    ).to_line()
    assert json.loads(line)["code"] == FALLBACK_WARNING
    assert parse_event(line).kind is EventKind.WARNING


def test_black_and_white_from_the_director_takes_a_grey_look() -> None:
    """Saturation 0 alone would be coloured again by the style's LUT, which comes
    after it in the render; a look the answer names is kept."""
    base = load_style("dynamic")
    assert base.grade.lut not in ("", BLACK_AND_WHITE_LUT)

    grey = apply_changes(base, {"grade": {"saturation": 0.0}}, "m")
    named = apply_changes(base, {"grade": {"saturation": 0.0, "lut": "cool"}}, "m")

    assert grey.grade.lut == BLACK_AND_WHITE_LUT
    assert named.grade.lut == "cool"
