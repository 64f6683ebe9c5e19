"""Run a job script with the commit of one table held back: once the job's Spark tasks have written that
table's files, the names go to a marker file and the job sleeps, so a test can SIGKILL it at the worst
moment (files on disk, nothing committed) without racing it.

    python pause_before_commit.py MARKER TABLE JOB_SCRIPT [job args ...]
"""

import runpy
import sys
import time
from pathlib import Path

from cytolake.lake.tables import Lake


def main() -> None:
    marker, table, job, *args = sys.argv[1:]
    commit = Lake.commit

    def held(self, name, files, *a, **kw):
        files = list(files)
        if name == table and files:
            Path(marker).write_text("\n".join(f.path for f in files))
            time.sleep(3600)
        return commit(self, name, files, *a, **kw)

    Lake.commit = held
    sys.argv = [job, *args]
    runpy.run_path(job, run_name="__main__")


if __name__ == "__main__":
    main()
