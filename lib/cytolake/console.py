"""Console summaries of jobs and lake state (rich tables), and query results as a table, CSV or JSON lines.

Everything printed that comes from data (lake rows, manifest text, ids, error messages, paths) goes into a
rich table as `Text`, never as markup: a value such as `a[b]c` or `[/]` prints as it is.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import decimal
import json
import math
import sys
from collections.abc import Iterator

import pyarrow as pa
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cytolake.config import Settings
from cytolake.lake import Lake


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def wide_console(out=None) -> Console:
    """A console for tables of ids and paths: as wide as the terminal, and never narrower than a row when the
    output is piped or redirected (rich would otherwise wrap or cut cells with "…" at 80 columns)."""
    out = out or sys.stdout
    return Console(file=out) if out.isatty() else Console(file=out, width=100_000)


def cell(v) -> Text:
    """A table cell from data: plain text (no markup), NULL for None."""
    return Text("NULL" if v is None else str(v))


def _row(*values) -> list[Text]:
    return [Text("" if v is None else str(v)) for v in values]


def print_ingest_summary(summary, settings: Settings, console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title="ingest")
    for c in ("brain", "status", "sections ok", "sections failed", "changed", "error"):
        t.add_column(c)
    for b, r in sorted(summary.brains.items()):
        t.add_row(*_row(b, r["status"], r["n_ok"], r["n_error"], "yes" if r["changed"] else "no", r["error"]))
    console.print(t)
    console.print(f"lake: {escape(str(Lake(settings.paths.lake).root))}")


def print_tables(lake: Lake, console: Console | None = None) -> int:
    """The tables' listing; returns how many tables could not be read (each shown with its error)."""
    console = console or wide_console()
    t = Table(title=Text(f"lake {lake.root}"))
    for c in ("table", "version", "rows", "files", "size", "path"):
        t.add_column(c, justify="right" if c in ("version", "rows", "files", "size") else "left")
    damaged = []
    for s in lake.stats():
        if s["error"]:
            damaged.append(s)
            t.add_row(*_row(s["table"], "damaged", "", "", "", s["path"]))
            continue
        t.add_row(*_row(s["table"], s["version"], f"{s['rows']:,}", s["files"], human_bytes(s["bytes"]), s["path"]))
    console.print(t)
    for s in damaged:
        console.print(Text(f"table {s['table']} cannot be read: {s['error']}"), style="red")
    return len(damaged)


def print_check(problems: dict[str, list], console: Console | None = None) -> None:
    """`cytolake check`: each table's state, then every problem found."""
    console = console or Console()
    t = Table(title="check")
    for c in ("table", "state", "problems"):
        t.add_column(c)
    for name, ps in problems.items():
        t.add_row(*_row(name, "damaged" if ps else "ok", len(ps)))
    console.print(t)
    for ps in problems.values():
        for p in ps:
            console.print(Text(str(p)))


def iso_duration(months: int, days: int, nanoseconds: int) -> str:
    """An SQL interval as an ISO 8601 duration (`P1M2DT3.5S`, `PT0S` when zero). Months and days stay apart
    from the seconds: how long they are depends on the date they are added to."""
    date = (f"{months}M" if months else "") + (f"{days}D" if days else "")
    s, ns = divmod(abs(nanoseconds), 10**9)
    seconds = ("-" if nanoseconds < 0 else "") + f"{s}.{ns:09d}".rstrip("0").rstrip(".")
    time = f"T{seconds}S" if nanoseconds else ""
    return f"P{date}{time}" if date or time else "PT0S"


def _json_value(v):
    """A query value as strict JSON's: non-finite floats (NaN, +-Infinity, which JSON has no words for) become
    null, intervals ISO 8601 durations, bytes base64, dates ISO text."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, pa.MonthDayNano):
        return iso_duration(v.months, v.days, v.nanoseconds)
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(v).decode()
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, (decimal.Decimal, _dt.timedelta)):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    return v


def _text_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(v).decode()
    if isinstance(v, pa.MonthDayNano):
        return _json_value(v)
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(_json_value(v), allow_nan=False)
    return str(v)


def _rows(batches: Iterator[pa.RecordBatch], max_rows: int | None) -> Iterator[tuple]:
    """Rows by position (column names may repeat), at most max_rows + 1 of them (the extra one says there are
    more); the batches after that are never fetched."""
    n = 0
    for b in batches:
        for row in zip(*(c.to_pylist() for c in b.columns)):
            yield row
            n += 1
            if max_rows is not None and n > max_rows:
                return


def unique_names(names: list[str]) -> list[str]:
    """Column names made unique for JSON objects: a repeated name gets `_2`, `_3`, ..."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def print_result(columns: list[str], batches: Iterator[pa.RecordBatch], fmt: str = "table", max_rows: int | None = 200,
                 out=None, console: Console | None = None) -> tuple[int, bool]:
    """A query result as a rich table, CSV (header; NULL empty; lists as JSON; bytes as base64) or JSON lines
    (one object per row; repeated column names made unique). Returns (rows written, whether rows were left)."""
    out = out or sys.stdout
    n, more = 0, False
    rows = _rows(batches, max_rows)
    if fmt == "table":
        console = console or wide_console(out)
        t = Table()
        for name in columns:
            t.add_column(Text(name))
        for row in rows:
            if max_rows is not None and n == max_rows:
                more = True
                break
            t.add_row(*(cell(v) for v in row))
            n += 1
        console.print(t)
        if more:
            console.print(Text(f"... more rows not shown (the first {max_rows}; --max-rows N shows more)"))
        return n, more
    if fmt not in ("csv", "json"):
        raise ValueError(f"unknown format {fmt!r}")
    w = csv.writer(out)
    if fmt == "csv":
        w.writerow(columns)
    keys = unique_names(columns)
    for row in rows:
        if max_rows is not None and n == max_rows:
            more = True
            break
        if fmt == "csv":
            w.writerow([_text_value(v) for v in row])
        else:
            out.write(json.dumps({k: _json_value(v) for k, v in zip(keys, row)}, default=str, allow_nan=False) + "\n")
        n += 1
    out.flush()
    return n, more


def print_arrow(table: pa.Table, console: Console | None = None, max_rows: int = 200) -> None:
    """An Arrow table as a rich table (columns by position: names may repeat)."""
    print_result(list(table.column_names), iter(table.to_batches()), "table", max_rows, console=console or Console())


def print_stage_results(results, console: Console | None = None) -> None:
    """The per-stage summary of a reprocess run."""
    console = console or Console(width=160)
    t = Table(title="reprocess")
    for c in ("stage", "status", "what it did"):
        t.add_column(c, overflow="fold")
    for r in results:
        t.add_row(*_row(r.stage, r.status, r.detail))
    console.print(t)


def print_maintenance(rows: list[dict], console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title="maintain")
    for c in ("table", "files before", "files after", "compacted into", "removed from disk", "version"):
        t.add_column(c, justify="left" if c == "table" else "right")
    for r in rows:
        t.add_row(*_row(r["table"], r["files_before"], r["files_after"], r["files_added"], r["vacuumed"], r["version"]))
    console.print(t)
