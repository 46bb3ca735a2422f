"""The desktop bundle's one executable: the window, or the engine when told so.

The app starts its engine as this same executable with MONTAGE_AI_ENGINE=1 in the
environment (app/engine_process.py), so no Python is needed on the machine. The
first argument then picks the engine tool, as `python -m engine...` would.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

ENGINE_ENV = "MONTAGE_AI_ENGINE"
# First arguments that make the executable the `montage-ai` command line; any
# other is a job file for the window to open.
CLI_WORDS = ("render", "export", "styles", "looks", "analyze", "warm-up", "-h",
             "--help")  # fmt: skip
# The same as packaging/frozen_numba_cache.py's LOCATORS, named here so that numba
# is not imported before the engine has set NUMBA_CACHE_DIR.
NUMBA_LOCATORS = (
    "frozen_numba_cache.BundleCacheLocator,numba.core.caching.UserWideCacheLocator"
)


def run_engine(argv: list[str]) -> int:
    """`python -m engine JOB.json`, `-m engine.inspect`, `-m engine.export`,
    `-m engine.gpu_probe` or the `montage-ai` command line (`cli render ...`), by
    the first argument."""
    tool, rest = (argv[0], argv[1:]) if argv else ("", [])
    if tool == "inspect":
        from engine.inspect import main as inspect_main

        return inspect_main(rest)
    if tool == "export":
        from engine.cli import main as cli_main

        return cli_main(["export", "--json", *rest])
    if tool == "gpu-probe":
        from engine.gpu_probe import main as gpu_probe_main

        return gpu_probe_main()
    if tool == "cli":
        from engine.cli import main as cli_main

        return cli_main(rest)
    from engine.runner import main as runner_main

    return runner_main(argv)


def main() -> int:
    # A spawned child (the song's analysis) runs its task here and exits.
    multiprocessing.freeze_support()
    if getattr(sys, "frozen", False):
        os.environ.setdefault("NUMBA_CACHE_LOCATOR_CLASSES", NUMBA_LOCATORS)
    if os.environ.get(ENGINE_ENV):
        return run_engine(sys.argv[1:])
    if sys.argv[1:2] and sys.argv[1] in CLI_WORDS:
        # `montage-ai/montage-ai render ...` in the unpacked folder, as installed.
        from engine.cli import main as cli_main

        return cli_main(sys.argv[1:])
    from app.main import main as app_main

    return app_main()


if __name__ == "__main__":
    sys.exit(main())
