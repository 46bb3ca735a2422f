"""A stand-in for `python -m engine.export` that keeps its contract without OTIO.

Usage: python stub_exporter.py [--warning TEXT]... [--fail-format FORMAT]
                               [--delay SEC] [--hang] [--exit-silently N]
                               OTIO --format FORMAT

Writes STEM + the format's suffix beside OTIO (and STEM.reels.csv for an EDL),
sends a warning event per --warning, then a finished event naming the file.
--fail-format sends a failed event (output_unwritable) for that format instead;
--exit-silently N exits with status N and no event; --hang sleeps until killed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine import protocol


def emit(event: protocol.Event) -> None:
    sys.stdout.write(event.to_line() + "\n")
    sys.stdout.flush()


def fail(code: protocol.ErrorCode, message: str) -> int:
    emit(protocol.make_failed(code, message))
    return protocol.EXIT_CODES[code]


def export(otio_path: Path, export_format: str, warnings: list[str]) -> int:
    if not otio_path.is_file():
        return fail(protocol.ErrorCode.INVALID_JOB, f"{otio_path}: no timeline there.")
    base = otio_path.with_suffix("")
    written = base.with_name(base.name + protocol.EXPORT_SUFFIXES[export_format])
    written.write_text(f"{export_format} of {otio_path.name}\n", encoding="utf-8")
    if export_format == "edl":
        reels = base.with_name(base.name + ".reels.csv")
        reels.write_text("reel,path\n", encoding="utf-8")
    for warning in warnings:
        emit(protocol.make_warning("export_limit", warning, str(written)))
    summary = {"formats": 1, "warnings": len(warnings)}
    emit(protocol.make_finished({export_format: str(written)}, summary))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warning", action="append", default=[])
    parser.add_argument("--fail-format", default="")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--exit-silently", type=int)
    parser.add_argument("otio", type=Path)
    parser.add_argument("--format", required=True, choices=protocol.EXPORT_FORMATS)
    args = parser.parse_args()

    sys.stderr.write(f"exporting {args.otio} as {args.format}\n")
    time.sleep(args.delay)
    while args.hang:
        time.sleep(0.1)
    if args.exit_silently is not None:
        sys.stderr.write("Segmentation fault in the XML writer\n")
        return args.exit_silently
    if args.format == args.fail_format:
        return fail(
            protocol.ErrorCode.OUTPUT_UNWRITABLE,
            f"Could not write {args.otio.stem}{protocol.EXPORT_SUFFIXES[args.format]}"
            f" in {args.otio.parent}: Permission denied. Choose another output folder.",
        )
    return export(args.otio, args.format, args.warning)


if __name__ == "__main__":
    sys.exit(main())
