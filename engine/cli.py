"""`montage-ai`: render a montage, list the styles, analyse a song."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from engine.protocol import (
    ASPECTS,
    DIRECTOR_KEY_ENV,
    EXPORT_FORMATS,
    FITS,
    QUALITIES,
    REFRAMES,
    TIMECODE_FORMATS,
    TRANSITIONS,
    UPSCALES,
    Event,
    EventKind,
    JobSpec,
    JobSpecError,
    frame_rate,
    parse_export_formats,
    timecode_rate_problem,
)

BAR_WIDTH = 30
DEFAULT_CLIP_AUDIO_DB = -12.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="montage-ai",
        description="Beat-synced montages from your clips and a song.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="make a montage")
    render.add_argument("clips", nargs="+", help="video files or folders of them")
    render.add_argument("--music", required=True, help="the song")
    render.add_argument("-o", "--output", required=True, help="the MP4 to write")
    render.add_argument("--style", default="dynamic", help="see `montage-ai styles`")
    render.add_argument("--prompt", default="", help="the mood, in words")
    render.add_argument("--duration", type=float, help="seconds (default: the song)")
    render.add_argument("--aspect", choices=ASPECTS, default="16:9")
    render.add_argument("--fit", choices=FITS, default="crop")
    render.add_argument("--size", type=_size, help="WIDTHxHEIGHT (default by quality)")
    render.add_argument(
        "--fps",
        type=_fps,
        default=30,
        help="frames per second: a whole number, or 23.976, 29.97, 59.94",
    )
    render.add_argument("--quality", choices=QUALITIES, default="final")
    render.add_argument("--seed", type=int, help="same seed, same edit")
    render.add_argument("--chronological", action="store_true")
    render.add_argument(
        "--reframe",
        choices=REFRAMES,
        default="off",
        help="follow faces (else motion) with the crop window, at this speed",
    )
    render.add_argument(
        "--upscale",
        choices=UPSCALES,
        default="off",
        help="Real-ESRGAN for clips smaller than the output (auto) or all (on); "
        "slow on a CPU",
    )
    render.add_argument(
        "--export",
        type=export_formats,
        default=["otio"],
        help=f"timelines to write beside the video: comma list of "
        f"{', '.join(EXPORT_FORMATS)}, or all (the .otio is always written)",
    )
    _add_look_arguments(render)
    render.add_argument(
        "--clip-audio",
        type=_clip_audio_db,
        nargs="?",
        const=DEFAULT_CLIP_AUDIO_DB,
        metavar="DB",
        help="keep the clips' own sound under the music, DB below its recorded "
        f"level (default {-DEFAULT_CLIP_AUDIO_DB:g})",
    )
    render.add_argument(
        "--director-url",
        default="",
        help="an OpenAI-compatible endpoint (http://localhost:11434/v1) that reads "
        f"the prompt; its key comes from ${DIRECTOR_KEY_ENV}",
    )
    render.add_argument("--director-model", default="", help="the model it runs")
    render.add_argument(
        "--json", action="store_true", help="print events as JSON lines"
    )
    export = commands.add_parser(
        "export", help="write a finished montage's timeline for an editor"
    )
    export.add_argument("source", help="the job's .otio, its MP4, or its job file")
    export.add_argument(
        "--format",
        "-f",
        required=True,
        type=export_formats,
        help=f"comma list of {', '.join(EXPORT_FORMATS)}, or all",
    )
    export.add_argument("--output-dir", help="where to write (default: beside it)")
    export.add_argument(
        "--json", action="store_true", help="print events as JSON lines"
    )
    commands.add_parser("styles", help="list the styles")
    commands.add_parser("looks", help="list the colour looks (LUTs)")
    analyze = commands.add_parser(
        "analyze", help="tempo, beats, downbeats and sections as JSON"
    )
    analyze.add_argument("song")
    commands.add_parser(
        "warm-up", help="compile the music analysis once, after install"
    )
    return parser


def _add_look_arguments(render: argparse.ArgumentParser) -> None:
    """Looks: each overrides the style's own choice (`montage-ai styles`)."""
    looks = render.add_argument_group("looks (default: the style's)")
    looks.add_argument(
        "--lut",
        default="",
        help="colour look: a name from `montage-ai looks`, none, or a .cube file",
    )
    looks.add_argument("--transition", choices=TRANSITIONS, help="how shots join")
    flip = argparse.BooleanOptionalAction
    looks.add_argument("--flash", action=flip, help="white flashes on downbeats")
    looks.add_argument(
        "--slow-motion",
        type=float,
        metavar="SPEED",
        help="speed of the shots in quiet parts: 0.25 to 1 (1 is off)",
    )
    looks.add_argument("--stabilize", action=flip, help="steady every clip")
    looks.add_argument("--denoise", action=flip, help="clean every clip's noise")
    for kind in ("stabilize", "denoise"):
        looks.add_argument(
            f"--{kind}-clip",
            action="append",
            default=[],
            metavar="PATH",
            help=f"{kind} this clip (or folder) only; repeat for more",
        )


class EveryFormat(list[str]):
    """The formats of `--export all`: every one the montage's rate allows."""


def export_formats(text: str) -> list[str]:
    try:
        names = parse_export_formats(text)
        said = {word.strip().lower() for word in text.split(",")}
        return EveryFormat(names) if "all" in said else names
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _fps(text: str) -> int | float:
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame rate") from error
    return int(value) if value.is_integer() else value


def _clip_audio_db(text: str) -> float:
    """A level below the clips' own, given as 12 or -12 alike."""
    try:
        return -abs(float(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a level in dB") from error


def _level_given_or_default(argv: list[str]) -> list[str]:
    """`--clip-audio clip.mp4` is the default level and a clip: argparse would take
    the clip's name for the level, since the level may be left out."""
    fixed = list(argv)
    for index, arg in enumerate(argv[:-1]):
        following = argv[index + 1]
        # Only a file or folder that is there: a mistyped level ("6db") stays the
        # level, for argparse to refuse.
        if arg == "--clip-audio" and os.path.exists(following):
            fixed[index] = f"--clip-audio={-DEFAULT_CLIP_AUDIO_DB:g}"
    return fixed


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT") from error
    return width, height


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(_level_given_or_default(argv))


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    # Warnings and failures reach the user as events; the log is for -v.
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if args.verbose else logging.CRITICAL,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command == "styles":
        return list_styles(sys.stdout)
    if args.command == "looks":
        return list_looks(sys.stdout)
    if args.command == "analyze":
        return analyze_song(args.song, sys.stdout)
    if args.command == "warm-up":
        return warm_up()
    if args.command == "export":
        return export(args)
    return render(args)


def export(args: argparse.Namespace) -> int:
    from engine.export import run_export
    from engine.runner import emit_line

    emit = emit_line if args.json else TerminalProgress(sys.stderr).show
    return run_export(args.source, args.format, args.output_dir, emit)


def warm_up() -> int:
    """Analyse a short generated beat so numba compiles into its cache now,
    not during the first job."""
    import tempfile
    import wave

    import numpy as np

    from engine.music import analyze_music

    rate = 22050
    signal = np.zeros(rate * 8, dtype=np.float32)
    for start in range(0, signal.size - 400, rate // 2):
        signal[start : start + 400] = np.hanning(800)[400:] * 0.8
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/warm-up.wav"
        with wave.open(path, "wb") as stream:
            stream.setnchannels(1)
            stream.setsampwidth(2)
            stream.setframerate(rate)
            stream.writeframes((signal * 32767).astype("<i2").tobytes())
        analyze_music(path, use_cache=False)
    return 0


def list_styles(out: TextIO) -> int:
    from engine.styles import load_style, style_names

    for name in style_names():
        style = load_style(name)
        out.write(f"{name:14} {style.description}\n")
    return 0


def list_looks(out: TextIO) -> int:
    from engine.luts import lut_names, lut_title

    for name in lut_names():
        out.write(f"{name:14} {lut_title(name)}\n")
    return 0


def analyze_song(path: str, out: TextIO) -> int:
    from engine.errors import EngineError
    from engine.music import analyze_music

    try:
        music = analyze_music(path)
    except EngineError as error:
        sys.stderr.write(error.message + "\n")
        return 1
    report = {
        "path": music.path,
        "duration_sec": round(music.duration_sec, 3),
        "tempo_bpm": round(music.tempo_bpm, 2),
        "beats_sec": [round(b, 4) for b in music.beats_sec],
        "downbeats_sec": [round(b, 4) for b in music.downbeats_sec],
        "sections": [
            {
                "start_sec": round(s.start_sec, 2),
                "end_sec": round(s.end_sec, 2),
                "kind": s.kind,
            }
            for s in music.sections
        ],
    }
    json.dump(report, out, indent=2)
    out.write("\n")
    return 0


def render(args: argparse.Namespace) -> int:
    from engine.runner import emit_line, install_signal_handlers, run_spec

    try:
        spec = JobSpec(
            clips=args.clips,
            music=args.music,
            output=args.output,
            style=args.style,
            prompt=args.prompt,
            duration_sec=args.duration,
            aspect=args.aspect,
            fit=args.fit,
            size=args.size,
            fps=args.fps,
            quality=args.quality,
            seed=args.seed,
            chronological=args.chronological,
            export=_formats_the_rate_allows(args.export, args.fps),
            clip_audio_db=args.clip_audio,
            director_url=args.director_url,
            director_model=args.director_model,
            reframe=args.reframe,
            upscale=args.upscale,
            lut=args.lut,
            transition=args.transition or "",
            downbeat_flash=args.flash,
            slow_motion=args.slow_motion,
            stabilize=args.stabilize,
            denoise=args.denoise,
            stabilize_clips=args.stabilize_clip,
            denoise_clips=args.denoise_clip,
        )
    except JobSpecError as error:
        sys.stderr.write(f"montage-ai: {error}\n")
        return 2
    install_signal_handlers()
    emit = emit_line if args.json else TerminalProgress(sys.stderr).show
    return run_spec(spec, emit)


def _formats_the_rate_allows(formats: list[str], fps: float) -> list[str]:
    """`--export all` means every format this rate allows: those that count in
    timecode go, with a note, where timecode has no such rate. Formats named one
    by one are kept, and a rate they cannot hold is refused."""
    problem = timecode_rate_problem(frame_rate(fps), formats)
    if not problem or not isinstance(formats, EveryFormat):
        return list(formats)
    sys.stderr.write(f"montage-ai: not written: {problem}\n")
    return [name for name in formats if name not in TIMECODE_FORMATS]


class TerminalProgress:
    """A one-line progress bar, warnings and results for a person at a terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.live = out.isatty()
        self.last_line = ""

    def show(self, event: Event) -> None:
        data = event.data
        if event.kind is EventKind.PROGRESS:
            self._bar(data)
        elif event.kind is EventKind.STAGE:
            self._print(f"{data['message']}")
        elif event.kind is EventKind.WARNING:
            self._print(f"warning: {data['message']}")
        elif event.kind is EventKind.FAILED:
            self._print(f"failed: {data['message']}")
        elif event.kind is EventKind.FINISHED:
            summary = data.get("summary", {})
            if "shots" in summary:
                used = summary.get("sources_used")
                shots = summary["shots"]
                self._print(
                    f"Done: {shots} shot{'' if shots == 1 else 's'} from {used} "
                    f"clip{'' if used == 1 else 's'}, seed {summary.get('seed')}."
                )
            else:
                self._print("Done.")
            for kind, path in data["outputs"].items():
                self._print(f"  {kind}: {path}")
                # The EDL's reel table, written beside it.
                reels = Path(path).with_suffix(".reels.csv")
                if kind == "edl" and reels.is_file():
                    self._print(f"  reels: {reels}")

    def _bar(self, data: dict[str, Any]) -> None:
        if not self.live:
            return
        fraction = float(data.get("overall", data["fraction"]))
        filled = round(fraction * BAR_WIDTH)
        eta = data.get("eta_sec")
        eta_text = (
            f" ETA {int(eta) // 60}:{int(eta) % 60:02d}" if eta is not None else ""
        )
        line = (
            f"\r[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {fraction:4.0%} "
            f"{data['stage']}{eta_text}"
        )
        self.out.write(line.ljust(len(self.last_line)))
        self.out.flush()
        self.last_line = line

    def _print(self, text: str) -> None:
        if self.live and self.last_line:
            self.out.write("\r" + " " * len(self.last_line) + "\r")
            self.last_line = ""
        self.out.write(text + "\n")
        self.out.flush()


if __name__ == "__main__":
    sys.exit(main())
