"""Run every benchmark and print one table: our figure, the reference, the ratio.

Usage: python -m benchmarks [--only NAME[,NAME...]] [--quick] [--workdir DIR]
       [--json PATH]

Each benchmark runs alone, one after another, so none slows another down. The
real clips come from MONTAGE_AI_REAL_MEDIA (`make bench` fetches them); the
benchmarks that need them say so and are skipped without them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Result, machine, print_results

# In the order of issue #6.
BENCHMARKS = ["render", "memory", "analysis", "music", "app", "scale"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated: " + ",".join(BENCHMARKS))
    parser.add_argument(
        "--quick", action="store_true", help="small inputs, to check it all runs"
    )
    parser.add_argument("--workdir", type=Path, help="generated media and logs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else BENCHMARKS
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="montage-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)

    print(f"Machine: {machine()}")
    print(f"Media and logs: {workdir}\n", flush=True)
    results: list[Result] = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        started = time.monotonic()
        print(f"== {name} ==", flush=True)
        these = module.run(workdir / name, quick=args.quick)
        print_results(these)
        print(f"({time.monotonic() - started:.0f} s)\n", flush=True)
        results += these
    print("== all ==")
    print_results(results, args.json)
    # A missed target is a figure to read, not an error: the table says NO.
    return 0


if __name__ == "__main__":
    sys.exit(main())
