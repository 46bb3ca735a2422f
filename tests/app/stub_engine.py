"""A stand-in engine: replays a recorded event stream so app tests need no media.

Usage: python stub_engine.py [--ignore-sigterm] [--delay SEC] [--log FILE]
       STREAM.jsonl JOB.json

--log appends the job file's path to FILE when the stream has been replayed to its
end, so that a test can count the renders that ran through.

Each line of the stream is written to stdout as it is, except directives:
    #!exit N        exit with status N now
    #!stderr TEXT   write TEXT as a line to stderr
    #!split [N]     write the next line in two pieces (cut at byte N), flushed apart
    #!hang          sleep until killed (or cancelled by SIGTERM)
On SIGTERM it behaves like the real engine: a failed event, then exit 143.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

CANCELLED_EXIT = 143


def write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def on_sigterm(signum: int, frame: object) -> None:
    failed = {"event": "failed", "time": time.time(), "code": "cancelled"}
    failed["message"] = "The render was cancelled."
    write((json.dumps(failed) + "\n").encode())
    sys.exit(CANCELLED_EXIT)


def replay(stream: Path, delay_sec: float) -> int:
    split_at: int | None = None
    for line in stream.read_text(encoding="utf-8").splitlines():
        if line.startswith("#!"):
            command, _, argument = line[2:].partition(" ")
            if command == "exit":
                return int(argument)
            if command == "stderr":
                sys.stderr.write(argument + "\n")
                sys.stderr.flush()
            elif command == "split":
                split_at = int(argument) if argument else -1
            elif command == "hang":
                while True:
                    time.sleep(0.1)
            continue
        data = (line + "\n").encode()
        if split_at is not None:
            # Cut inside the line, and where asked inside a UTF-8 character.
            middle = split_at if split_at >= 0 else len(data) // 2
            write(data[:middle])
            time.sleep(0.1)
            data = data[middle:]
            split_at = None
        write(data)
        time.sleep(delay_sec)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--delay", type=float, default=0.005)
    parser.add_argument("--log", type=Path)
    parser.add_argument("stream", type=Path)
    parser.add_argument("job", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.SIG_IGN if args.ignore_sigterm else on_sigterm)
    # The app must have written a readable job before starting us.
    json.loads(args.job.read_text(encoding="utf-8"))
    status = replay(args.stream, args.delay)
    if args.log is not None and status == 0:
        with args.log.open("a", encoding="utf-8") as log:
            log.write(f"{args.job}\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
