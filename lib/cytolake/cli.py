"""The `cytolake` command: look at the lake.

    cytolake [--config conf/local.yaml] tables
    cytolake [--config conf/local.yaml] sql "SELECT s.brain_id, count(*) FROM sections s GROUP BY 1"
"""

from __future__ import annotations

import argparse
import sys

from cytolake.lake import Lake
from cytolake.lake.sql import ReadOnlyError, query
from cytolake.report import print_arrow, print_tables
from cytolake.runner import EXIT_FAILED, EXIT_USAGE, settings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cytolake", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="conf/local.yaml", help="YAML config (default: conf/local.yaml)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("tables", help="list the lake's tables with version, rows, files and size")
    q = sub.add_parser("sql", help="run a read-only SQL query over the lake tables (DuckDB dialect)")
    q.add_argument("query")
    q.add_argument("--max-rows", type=int, default=200)
    a = p.parse_args(argv)
    lake = Lake(settings(a.config).paths.lake)
    if a.command == "tables":
        print_tables(lake)
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
