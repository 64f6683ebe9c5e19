"""What every job entry point shares: the --config argument, start-up validation, exit codes."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cytolake.config import ConfigError, Settings, load_config
from cytolake.lake.lock import LakeBusy, NotALake, lake_lock
from cytolake.lake.tables import Lake

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_BUSY = 0, 1, 2, 3, 4
EXIT_PIPE = 128 + signal.SIGPIPE  # what a shell reports for a process that SIGPIPE ended


def add_config_argument(p: argparse.ArgumentParser) -> None:
    """--config, the YAML config of every job and of the `cytolake` command."""
    p.add_argument("--config", default="conf/local.yaml", help="YAML config (default: conf/local.yaml)")


def add_wait_argument(p: argparse.ArgumentParser) -> None:
    """--wait, for a command that takes the lake's writer lock."""
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="when another run holds the lake lock, wait this long for it (default 0: exit 4 at once)")


def parser(description: str, writes_lake: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_argument(p)
    if writes_lake:
        add_wait_argument(p)
    return p


@contextmanager
def lake_writer(cfg: Settings, job: str, wait_s: float) -> Iterator[None]:
    """The lake's writer lock around a job's work; exits 4 naming the holder when another run keeps it."""
    try:
        with lake_lock(cfg.paths.lake, job, wait_s):
            _refuse_unwritable(cfg, job)
            yield
    except LakeBusy as e:  # only the lock raises it
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_BUSY) from None
    except NotALake as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def _refuse_unwritable(cfg: Settings, job: str) -> None:
    """Exit 1 before anything is written when a table asks for a newer Delta writer: a job writes several
    tables, and finding out at the second one's commit would leave the first written."""
    unwritable = Lake(cfg.paths.lake).unwritable()
    if unwritable:
        for table, why in unwritable.items():
            print(f"error: table {table}: {why}", file=sys.stderr)
        print(f"error: not starting {job}: {len(unwritable)} table(s) it cannot write", file=sys.stderr)
        raise SystemExit(EXIT_FAILED)


def existing_lake(cfg: Settings) -> Lake:
    """The lake a reading or upkeeping command works on; exit 2 when `paths.lake` is a file or names nothing
    (listed, either would look like an empty lake)."""
    root = Path(cfg.paths.lake).absolute()
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist: there is no lake there (ingest makes one)"
        print(f"error: {root}: the lake path (paths.lake in {cfg.source}) {what}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    return Lake(root)


def stdout_closed() -> int:
    """The exit code for a reader that closed our stdout early (`| head`): EXIT_PIPE, without a message, as
    a tool that SIGPIPE ended. stdout is pointed at /dev/null so that the interpreter's last flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_PIPE


def settings(path: str) -> Settings:
    """The validated config, or exit 2 with a message naming the file and the bad keys.

    Also makes stdout line-buffered, so progress shows as it happens under cron, nohup or a log file.
    """
    sys.stdout.reconfigure(line_buffering=True)
    try:
        return load_config(path)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def finish(failed: int, what: str) -> int:
    """Exit code of a job: 0 when nothing failed, 3 when some items failed and the rest went on."""
    if failed:
        print(f"{failed} {what} failed (recorded in the lake with their errors)", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK
