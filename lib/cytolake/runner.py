"""What every job entry point shares: the --config argument, start-up validation, exit codes."""

from __future__ import annotations

import argparse
import sys

from cytolake.config import ConfigError, Settings, load_config

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", default="conf/local.yaml", help="YAML config (default: conf/local.yaml)")
    return p


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
