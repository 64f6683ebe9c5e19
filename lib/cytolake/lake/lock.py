"""One writer at a time per lake: an exclusive `flock` on `<lake>/_cytolake.lock`.

Our commits are delta-rs transactions over files that Spark tasks wrote; two jobs appending the same
new patches would both succeed and duplicate them (Delta's optimistic concurrency only refuses
conflicting *versions*, not duplicate rows). So every job that writes takes this lock first, before its
Spark session starts. The kernel drops a `flock` when its holder dies, even by SIGKILL: a crashed run
never leaves a stale lock behind. The lake must be on a file system with working `flock` (local disk,
NFSv4, Lustre, GPFS); the holder's pid, host and start time are written into the file for the message
the loser prints.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

LOCK_FILE = "_cytolake.lock"


class LakeBusy(RuntimeError):
    """Another run holds the lake's lock and did not release it in time."""


class NotALake(ValueError):
    """The lake path is not a folder (a file is there) and none can be made there."""


@contextmanager
def lake_lock(root: str | Path, job: str, wait_s: float = 0.0, log=print) -> Iterator[Path]:
    """Hold the lake's writer lock for the block; wait up to `wait_s` seconds for it, else raise LakeBusy."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotALake(f"{root}: the lake path is not a folder (paths.lake); not starting {job}")
    try:
        root.mkdir(parents=True, exist_ok=True)  # a first run makes the lake
    except OSError as e:
        raise NotALake(f"{root}: cannot make the lake folder ({e.strerror}); not starting {job}") from None
    path = root / LOCK_FILE
    with open(path, "a+") as f:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                if time.monotonic() >= deadline:
                    raise LakeBusy(f"{path}: the lake is locked by {holder}; not starting {job} "
                                   f"(waited {wait_s:.0f} s; pass --wait SECONDS to wait longer)") from None
                if not told:
                    log(f"{job}: waiting up to {wait_s:.0f} s for the lake lock held by {holder}")
                    told = True
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        f.seek(0)
        f.truncate()
        f.write(f"{job} (pid {os.getpid()} on {socket.gethostname()}, since "
                f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC)\n")
        f.flush()
        try:
            yield path
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
