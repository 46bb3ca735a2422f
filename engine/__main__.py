"""`python -m engine JOB.json`: run one job, events on stdout, logs on stderr."""

from __future__ import annotations

import sys

from engine.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
