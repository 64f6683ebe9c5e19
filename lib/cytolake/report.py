"""Console summaries of jobs and lake state (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from cytolake.config import Settings
from cytolake.lake import Lake


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def print_ingest_summary(summary, settings: Settings, console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title="ingest")
    for c in ("brain", "status", "sections ok", "sections failed", "changed", "error"):
        t.add_column(c)
    for b, r in sorted(summary.brains.items()):
        t.add_row(b, r["status"], str(r["n_ok"]), str(r["n_error"]), "yes" if r["changed"] else "no", r["error"] or "")
    console.print(t)
    console.print(f"lake: {Lake(settings.paths.lake).root}")


def print_tables(lake: Lake, console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title=f"lake {lake.root}")
    for c in ("table", "version", "rows", "files", "size", "path"):
        t.add_column(c, justify="right" if c in ("version", "rows", "files", "size") else "left")
    for s in lake.stats():
        t.add_row(s["table"], str(s["version"]), f"{s['rows']:,}", str(s["files"]), human_bytes(s["bytes"]), s["path"])
    console.print(t)


def print_arrow(table, console: Console | None = None, max_rows: int = 200) -> None:
    console = console or Console()
    t = Table()
    for name in table.column_names:
        t.add_column(name)
    for row in table.slice(0, max_rows).to_pylist():
        t.add_row(*("NULL" if v is None else str(v) for v in row.values()))
    console.print(t)
    if table.num_rows > max_rows:
        console.print(f"... {table.num_rows - max_rows} more rows")


def print_stage_results(results, console: Console | None = None) -> None:
    """The per-stage summary of a reprocess run."""
    console = console or Console(width=160)
    t = Table(title="reprocess")
    for c in ("stage", "status", "what it did"):
        t.add_column(c, overflow="fold")
    for r in results:
        t.add_row(r.stage, r.status, r.detail)
    console.print(t)


def print_maintenance(rows: list[dict], console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title="maintain")
    for c in ("table", "files before", "files after", "compacted into", "removed from disk", "version"):
        t.add_column(c, justify="left" if c == "table" else "right")
    for r in rows:
        t.add_row(r["table"], str(r["files_before"]), str(r["files_after"]), str(r["files_added"]),
                  str(r["vacuumed"]), str(r["version"]))
    console.print(t)
