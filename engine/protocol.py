"""The seam between the app and the engine: job spec, events and error codes.

Standard library only: the app imports this module and nothing else of the engine.
One event is one JSON object on one line of the engine's stdout.
"""

from __future__ import annotations

import enum
import json
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from typing import Any

PROTOCOL_VERSION = 1

ASPECTS = ("16:9", "9:16", "1:1")
FITS = ("crop", "fit")
QUALITIES = ("preview", "final")
# Smart reframing: off (centred crop) or following the subject at a speed.
REFRAMES = ("off", "calm", "normal", "fast")
# Real-ESRGAN: off, auto (sources smaller than the output) or on (every source).
UPSCALES = ("off", "auto", "on")
# Timeline formats for editors; the .otio is always written beside a render.
EXPORT_FORMATS = ("otio", "fcp7", "fcpxml", "edl", "mlt", "csv")
EXPORT_SUFFIXES = {
    "otio": ".otio",
    "fcp7": ".xml",
    "fcpxml": ".fcpxml",
    "edl": ".edl",
    "mlt": ".mlt",
    "csv": ".csv",
}
# What each format is for, by the editors that open it (menus and help).
EXPORT_LABELS = {
    "otio": "OpenTimelineIO (DaVinci Resolve, Premiere Pro, Kdenlive)",
    "fcp7": "FCP 7 XML (Premiere Pro, DaVinci Resolve)",
    "fcpxml": "FCPXML (Final Cut Pro, DaVinci Resolve)",
    "edl": "CMX 3600 EDL (Avid, any editor)",
    "mlt": "MLT project (Shotcut, Kdenlive)",
    "csv": "Cut list (spreadsheet)",
}


# The largest seed: the timeline records it, and OpenTimelineIO holds 64-bit ints.
MAX_SEED = 2**63 - 1

# The formats that count in SMPTE timecode, and the timeline rates it can count.
TIMECODE_FORMATS = ("fcp7", "fcpxml", "edl")
TIMECODE_RATES = tuple(
    Fraction(rate) for rate in ("24000/1001", "24", "25", "30000/1001", "30",
                                "48000/1001", "48", "50", "60000/1001", "60")
)  # fmt: skip


def timecode_rate_problem(rate: Fraction, formats: Iterable[str]) -> str | None:
    """Why those of formats that count in timecode cannot hold a timeline at
    rate, and what to do; None when they can (or none of them is asked)."""
    counting = [EXPORT_LABELS[name].split(" (")[0] for name in formats
                if name in TIMECODE_FORMATS]  # fmt: skip
    if not counting or rate in TIMECODE_RATES:
        return None
    *rates, last = (f"{float(r):.3f}".rstrip("0").rstrip(".") for r in TIMECODE_RATES)
    *firsts, final = counting
    names = f"{', '.join(firsts)} and {final}" if firsts else final
    them = "them" if firsts else "it"
    return (
        f"{names} count{'' if firsts else 's'} in SMPTE timecode, which has "
        f"no {float(rate):g} fps: render at {', '.join(rates)} or {last} fps to "
        f"export {them}, or leave {them} out (the .otio, MLT project and cut list "
        "hold any rate)."
    )


def parse_export_formats(text: str) -> list[str]:
    """ "fcp7, edl" or "all" as a list of formats; ValueError names an unknown one."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in (*EXPORT_FORMATS, "all")]
    if "all" in names and not unknown:
        return list(EXPORT_FORMATS)
    if unknown or not names:
        raise ValueError(
            f"unknown export format {', '.join(unknown) or repr(text)}: use "
            f"{', '.join(EXPORT_FORMATS)} or all"
        )
    return names


# How shots join (a job's `transition` overrides the style's); "flash" on
# downbeats is its own option.
TRANSITIONS = ("cut", "crossfade", "dip_black", "dip_white", "whip")
# The slowest a quiet section's shots may play (slow motion), as a speed.
SLOWEST_SPEED = 0.25

STAGES = ("probe", "music", "clips", "plan", "render", "export")
# Whole rates whose NTSC variant (x 1000/1001) a job may ask for.
NTSC_BASES = (24, 30, 48, 60, 120)
OUTPUT_SUFFIXES = (".mp4", ".m4v")
# The clips' own sound under the music, in dB below as recorded (None: off).
CLIP_AUDIO_DB_RANGE = (-60.0, 0.0)
# The AI director's API key reaches the engine in this environment variable only,
# never in a job file.
DIRECTOR_KEY_ENV = "MONTAGE_AI_DIRECTOR_KEY"


class ErrorCode(enum.StrEnum):
    """Stable error codes; each has its own process exit status."""

    INVALID_JOB = "invalid_job"
    NO_USABLE_CLIPS = "no_usable_clips"
    MUSIC_UNUSABLE = "music_unusable"
    OUTPUT_UNWRITABLE = "output_unwritable"
    DISK_FULL = "disk_full"
    OUT_OF_MEMORY = "out_of_memory"
    RENDER_FAILED = "render_failed"
    CANCELLED = "cancelled"
    INTERNAL = "internal"


EXIT_CODES: dict[ErrorCode, int] = {
    ErrorCode.INVALID_JOB: 2,
    ErrorCode.NO_USABLE_CLIPS: 3,
    ErrorCode.MUSIC_UNUSABLE: 4,
    ErrorCode.OUTPUT_UNWRITABLE: 5,
    ErrorCode.DISK_FULL: 6,
    ErrorCode.OUT_OF_MEMORY: 7,
    ErrorCode.RENDER_FAILED: 8,
    # 128 + SIGTERM, what a shell reports for a terminated process.
    ErrorCode.CANCELLED: 143,
    ErrorCode.INTERNAL: 70,
}


def error_code_for_exit(status: int) -> ErrorCode | None:
    """The error class an engine exit status stands for, if it is one of ours."""
    for code, exit_status in EXIT_CODES.items():
        if exit_status == status:
            return code
    return None


class JobSpecError(ValueError):
    """A job file that cannot be run as written."""


@dataclass
class JobSpec:
    """Everything one render needs; written by the app or the CLI as JSON."""

    clips: list[str]
    music: str
    output: str
    style: str = "dynamic"
    prompt: str = ""
    duration_sec: float | None = None
    aspect: str = "16:9"
    fit: str = "crop"
    size: tuple[int, int] | None = None
    # A whole number, or an NTSC rate: 23.976, 29.97, 47.952, 59.94 or 119.88.
    fps: int | float = 30
    quality: str = "final"
    seed: int | None = None
    chronological: bool = False
    export: list[str] = field(default_factory=lambda: ["otio"])
    clip_audio_db: float | None = None
    # An OpenAI-compatible chat endpoint reads the prompt when set (the AI director).
    director_url: str = ""
    director_model: str = ""
    reframe: str = "off"
    upscale: str = "off"
    # Looks: empty or None keeps the style's choice. lut: a name of ours, "none"
    # or a .cube path; slow_motion: the speed of quiet shots (1 is off).
    lut: str = ""
    transition: str = ""
    downbeat_flash: bool | None = None
    slow_motion: float | None = None
    stabilize: bool | None = None
    denoise: bool | None = None
    # Clips (as listed, or files inside a listed folder) cleaned up regardless.
    stabilize_clips: list[str] = field(default_factory=list)
    denoise_clips: list[str] = field(default_factory=list)
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise JobSpecError naming the first field of a wrong type or range."""
        _check_types(self)
        if self.version != PROTOCOL_VERSION:
            raise JobSpecError(
                f"The job file is of version {self.version}; this engine reads "
                f"version {PROTOCOL_VERSION}. Create the job again in this version."
            )
        if not self.clips:
            raise JobSpecError("The job names no clips: add at least one video.")
        if not self.music:
            raise JobSpecError("The job names no music: add a song.")
        if not self.output:
            raise JobSpecError("The job names no output file.")
        if not self.output.lower().endswith(OUTPUT_SUFFIXES):
            raise JobSpecError(
                f"The output {self.output!r} must be an MP4 file: end its name "
                "with .mp4."
            )
        _check_choice("aspect", self.aspect, ASPECTS)
        _check_choice("fit", self.fit, FITS)
        _check_choice("quality", self.quality, QUALITIES)
        _check_choice("reframe", self.reframe, REFRAMES)
        _check_choice("upscale", self.upscale, UPSCALES)
        if self.reframe != "off" and self.fit != "crop":
            raise JobSpecError(
                f"Reframe {self.reframe!r} moves a crop window, and fit {self.fit!r} "
                "does not crop: use fit 'crop', or reframe 'off'."
            )
        for name in self.export:
            _check_choice("export format", name, EXPORT_FORMATS)
        if self.duration_sec is not None and not 1.0 <= self.duration_sec <= 7200:
            raise JobSpecError(
                f"Duration {self.duration_sec} s is out of range: use 1 to 7200 s."
            )
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise JobSpecError(
                f"Seed {self.seed} is out of range: use a whole number from 0 to "
                f"{MAX_SEED}, or none for a new one."
            )
        problem = timecode_rate_problem(frame_rate(self.fps), self.export)
        if problem:
            raise JobSpecError(problem)
        _check_clip_audio(self.clip_audio_db)
        check_director(self.director_url, self.director_model)
        _check_looks(self)
        if self.size is not None:
            width, height = self.size
            if not (16 <= width <= 7680 and 16 <= height <= 4320):
                raise JobSpecError(
                    f"Output size {width}x{height} is out of range: "
                    "use 16x16 to 7680x4320."
                )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise JobSpecError(f"Unknown job field(s): {', '.join(unknown)}.")
        values = dict(data)
        if isinstance(values.get("size"), list):
            values["size"] = tuple(values["size"])
        if isinstance(values.get("clips"), str):
            values["clips"] = [values["clips"]]
        try:
            return cls(**values)
        except TypeError as error:
            raise JobSpecError(f"The job file is incomplete: {error}.") from error

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise JobSpecError(f"The job file is not valid JSON: {error}.") from error
        if not isinstance(data, dict):
            raise JobSpecError("The job file must hold one JSON object.")
        return cls.from_dict(data)


_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "music": ((str,), "a file path"),
    "output": ((str,), "a file path"),
    "style": ((str,), "a style name"),
    "prompt": ((str,), "text"),
    "duration_sec": ((int, float, type(None)), "a number of seconds or null"),
    "aspect": ((str,), "16:9, 9:16 or 1:1"),
    "fit": ((str,), "crop or fit"),
    "fps": ((int, float), "a number of frames per second"),
    "quality": ((str,), "preview or final"),
    "seed": ((int, type(None)), "a whole number or null"),
    "chronological": ((bool,), "true or false"),
    "clip_audio_db": ((int, float, type(None)), "a level in dB or null"),
    "director_url": ((str,), "an http(s) URL or empty"),
    "director_model": ((str,), "a model name or empty"),
    "reframe": ((str,), "off, calm, normal or fast"),
    "upscale": ((str,), "off, auto or on"),
    "lut": ((str,), "a look name or a .cube path"),
    "transition": ((str,), "a transition name or empty"),
    "downbeat_flash": ((bool, type(None)), "true, false or null"),
    "slow_motion": ((int, float, type(None)), "a speed from 0.25 to 1 or null"),
    "stabilize": ((bool, type(None)), "true, false or null"),
    "denoise": ((bool, type(None)), "true, false or null"),
    "version": ((int,), "a whole number"),
}


def _check_types(spec: JobSpec) -> None:
    for name, (types, wanted) in _FIELD_TYPES.items():
        value = getattr(spec, name)
        if not isinstance(value, types) or (
            isinstance(value, bool) and bool not in types
        ):
            raise JobSpecError(
                f"The job field {name!r} must be {wanted}, not {value!r}."
            )
    for name in ("clips", "export", "stabilize_clips", "denoise_clips"):
        value = getattr(spec, name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise JobSpecError(f"The job field {name!r} must be a list of text.")
    size = spec.size
    if size is not None and not (
        isinstance(size, tuple)
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in size)
    ):
        raise JobSpecError(
            f"The job field 'size' must be [width, height], not {size!r}."
        )


def _check_looks(spec: JobSpec) -> None:
    if spec.transition:
        _check_choice("transition", spec.transition, TRANSITIONS)
    speed = spec.slow_motion
    if speed is not None and not SLOWEST_SPEED <= speed <= 1:
        raise JobSpecError(
            f"Slow motion at {speed} times the speed is out of range: use "
            f"{SLOWEST_SPEED} (a quarter) to 1 (off)."
        )


def frame_rate(fps: float) -> Fraction:
    """A job's frame rate as an exact fraction: 25 -> 25, 29.97 -> 30000/1001.

    Raises JobSpecError for a rate that is neither whole (1 to 120) nor NTSC.
    """
    if isinstance(fps, int) or float(fps).is_integer():
        if 1 <= fps <= 120:
            return Fraction(int(fps))
    else:
        for base in NTSC_BASES:
            if abs(fps - base * 1000 / 1001) < 0.005:
                return Fraction(base * 1000, 1001)
    raise JobSpecError(
        f"Frame rate {fps} is not one we can render: use a whole number from 1 to "
        "120, or 23.976, 29.97, 47.952, 59.94 or 119.88."
    )


def _check_clip_audio(level_db: float | None) -> None:
    low, high = CLIP_AUDIO_DB_RANGE
    if level_db is not None and not low <= level_db <= high:
        raise JobSpecError(
            f"Clip sound {-level_db:g} dB under the clips' own level is out of "
            f"range: use {abs(high):g} to {abs(low):g} dB under it, or leave it off."
        )


def check_director(url: str, model: str) -> None:
    """Raise JobSpecError for an AI director URL or model that cannot be used."""
    if not url:
        return
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobSpecError(
            f"The AI director URL {url!r} is not an http or https address: use one "
            "like http://localhost:11434/v1, or leave it empty."
        )
    if parts.username or parts.password or parts.query:
        raise JobSpecError(
            "The AI director URL holds a user name, password or query: give the "
            "key in Settings (or MONTAGE_AI_DIRECTOR_KEY), never in the URL."
        )
    if not model:
        raise JobSpecError(
            "The AI director needs a model name with its URL (for example llama3.2)."
        )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise JobSpecError(
            f"Unknown {name} {value!r}: use one of {', '.join(choices)}."
        )


class EventKind(enum.StrEnum):
    STARTED = "started"
    STAGE = "stage"
    PROGRESS = "progress"
    WARNING = "warning"
    FINISHED = "finished"
    FAILED = "failed"
    # From `python -m engine.inspect`, which describes media for the window.
    CLIP_INFO = "clip_info"
    MUSIC_INFO = "music_info"
    # From `python -m engine.inspect upscale`: what upscaling a job would cost.
    UPSCALE_INFO = "upscale_info"


@dataclass
class Event:
    """One engine event; `data` holds the fields of its kind (see make_*)."""

    kind: EventKind
    data: dict[str, Any]
    time_sec: float = field(default_factory=time.time)

    def to_line(self) -> str:
        payload = {"event": self.kind.value, "time": round(self.time_sec, 3)}
        payload.update(self.data)
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


class ProtocolError(ValueError):
    """A line from the engine that is not a valid event."""


_REQUIRED: dict[EventKind, dict[str, type | tuple[type, ...]]] = {
    EventKind.STARTED: {"pid": int},
    EventKind.STAGE: {"stage": str, "message": str},
    EventKind.PROGRESS: {"stage": str, "fraction": (int, float)},
    EventKind.WARNING: {"code": str, "message": str},
    EventKind.FINISHED: {"outputs": dict},
    EventKind.FAILED: {"code": str, "message": str},
    EventKind.CLIP_INFO: {"path": str, "ok": bool},
    EventKind.MUSIC_INFO: {"path": str, "ok": bool},
    EventKind.UPSCALE_INFO: {"ok": bool, "message": str},
}


def parse_event(line: str) -> Event:
    """Parse one line of engine output; raise ProtocolError if it is not an event."""
    try:
        payload = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ProtocolError(f"not JSON: {line[:80]!r}") from error
    if not isinstance(payload, dict):
        raise ProtocolError(f"not a JSON object: {line[:80]!r}")
    try:
        kind = EventKind(payload.pop("event", None))
    except ValueError as error:
        raise ProtocolError(f"unknown event in {line[:80]!r}") from error
    time_sec = payload.pop("time", None)
    if not isinstance(time_sec, (int, float)) or isinstance(time_sec, bool):
        raise ProtocolError(f"event without a time: {line[:80]!r}")
    for name, expected in _REQUIRED[kind].items():
        value = payload.get(name)
        wrong_bool = isinstance(value, bool) and expected is not bool
        if not isinstance(value, expected) or wrong_bool:
            raise ProtocolError(f"{kind.value} event without a valid {name!r}")
    if kind is EventKind.PROGRESS and not 0.0 <= payload["fraction"] <= 1.0:
        raise ProtocolError("progress fraction outside 0..1")
    return Event(kind, payload, float(time_sec))


def make_started(pid: int, job: str) -> Event:
    return Event(EventKind.STARTED, {"pid": pid, "job": job})


def make_stage(stage: str, message: str) -> Event:
    return Event(EventKind.STAGE, {"stage": stage, "message": message})


def make_progress(stage: str, fraction: float, eta_sec: float | None = None) -> Event:
    data: dict[str, Any] = {"stage": stage, "fraction": min(1.0, max(0.0, fraction))}
    if eta_sec is not None:
        data["eta_sec"] = round(eta_sec, 1)
    return Event(EventKind.PROGRESS, data)


def make_warning(code: str, message: str, path: str | None = None) -> Event:
    data: dict[str, Any] = {"code": code, "message": message}
    if path is not None:
        data["path"] = path
    return Event(EventKind.WARNING, data)


def make_finished(outputs: dict[str, str], summary: dict[str, Any]) -> Event:
    return Event(EventKind.FINISHED, {"outputs": outputs, "summary": summary})


def make_failed(code: ErrorCode, message: str) -> Event:
    return Event(EventKind.FAILED, {"code": code.value, "message": message})
