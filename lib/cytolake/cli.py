"""The `cytolake` command: look at the lake, and look after it.

    cytolake [--config conf/local.yaml] tables
    cytolake [--config conf/local.yaml] sql "SELECT s.brain_id, count(*) FROM sections s GROUP BY 1"
    cytolake [--config conf/local.yaml] maintain [--retention-days 7] [--wait 600]
"""

from __future__ import annotations

import argparse
import sys

from cytolake.lake import Lake
from cytolake.lake.maintain import maintain
from cytolake.lake.sql import ReadOnlyError, query
from cytolake.report import print_arrow, print_maintenance, print_tables
from cytolake.runner import EXIT_FAILED, EXIT_USAGE, lake_writer, settings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cytolake", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="conf/local.yaml", help="YAML config (default: conf/local.yaml)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("tables", help="list the lake's tables with version, rows, files and size")
    q = sub.add_parser("sql", help="run a read-only SQL query over the lake tables (DuckDB dialect)")
    q.add_argument("query")
    q.add_argument("--max-rows", type=int, default=200)
    m = sub.add_parser("maintain", help="compact small files and vacuum files older than the retention (takes the lake lock)")
    m.add_argument("--retention-days", type=float, help="time travel kept for this many days (default: maintain.retention_days)")
    m.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for another run's lake lock")
    a = p.parse_args(argv)
    cfg = settings(a.config)
    lake = Lake(cfg.paths.lake)
    if a.command == "tables":
        print_tables(lake)
        return 0
    if a.command == "maintain":
        days = cfg.maintain.retention_days if a.retention_days is None else a.retention_days
        if days < 0:
            print("error: --retention-days must be >= 0", file=sys.stderr)
            return EXIT_USAGE
        with lake_writer(cfg, "maintain", a.wait):
            print_maintenance(maintain(lake, days, cfg.maintain.target_file_mb))
        return 0
    try:
        print_arrow(query(lake, a.query), max_rows=a.max_rows)
    except ReadOnlyError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # a SQL error: say what DuckDB said, no traceback
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
