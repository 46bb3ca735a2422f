"""`python -m engine.export SOURCE --format F[,F...]`: a finished job for editors.

SOURCE is the .otio a render wrote, the rendered MP4 or the job file. The same as
`montage-ai export --json`: events go to stdout as JSON lines (warnings, then
finished or failed), for the app.
"""

from __future__ import annotations

import sys

from engine.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", "--json", *sys.argv[1:]]))
