"""Run `cytolake export` held midway: when the first brain's surface, label maps and HTML view are written and
its first volume is about to be, the file named MARKER appears and the command sleeps, so a test can SIGKILL it
there without racing it.

    python pause_mid_export.py MARKER [cytolake args ...]
"""

import sys
import time
from pathlib import Path

import cytolake.export.compute as export_compute
from cytolake.cli import main as cytolake


def main() -> int:
    marker, *args = sys.argv[1:]
    write = export_compute.write_label_volume

    def held(*a, **kw):
        Path(marker).write_text("paused\n")
        time.sleep(3600)
        return write(*a, **kw)

    export_compute.write_label_volume = held
    return cytolake(args)


if __name__ == "__main__":
    raise SystemExit(main())
