"""Delta time travel over the lake: each table's versions (what `DESCRIBE HISTORY` shows), and a table's
snapshot at a version or at a point in time, for `cytolake history` and `cytolake sql --version / --as-of`.

Both come from delta-rs's own log reading (`DeltaTable.history`, `DeltaTable(path, version=N)`,
`load_as_version`), so they agree with any other Delta reader. A version can be read while its files are
still on disk: `cytolake maintain` vacuums files older than `maintain.retention_days`, and reading a version
older than that fails naming the missing file.
"""

from __future__ import annotations

import datetime as _dt
import json

import pyarrow as pa
from deltalake import DeltaTable

from cytolake.lake.tables import Lake
from cytolake.schemas import table_names

HISTORY_SCHEMA = pa.schema([("table", pa.string()), ("version", pa.int64()), ("timestamp", pa.timestamp("ms", "UTC")),
                            ("operation", pa.string()), ("files_added", pa.int64()), ("files_removed", pa.int64()),
                            ("rows", pa.int64()), ("parameters", pa.string())])

# (added, removed) file counts, and rows written, as our commits (cytolake.*) and delta-rs's operations record them
_ADDED = ("cytolake.adds", "num_added_files", "num_target_files_added", "numFilesAdded")
_REMOVED = ("cytolake.removes", "num_removed_files", "num_target_files_removed", "numFilesRemoved")
_ROWS = ("cytolake.rows", "num_added_rows", "num_output_rows", "num_target_rows_inserted")


def _first(info: dict, keys: tuple[str, ...]) -> int | None:
    metrics = info.get("operationMetrics") or {}
    for k in keys:
        for src in (info, metrics):
            if src.get(k) is not None:
                try:
                    return int(src[k])
                except (TypeError, ValueError):
                    return None
    return None


def _parameters(info: dict) -> str:
    """The operation's parameters without the table's whole metadata (which CREATE TABLE carries)."""
    p = {k: v for k, v in (info.get("operationParameters") or {}).items() if k != "metadata"}
    return json.dumps(p, sort_keys=True) if p else ""


def table_history(lake: Lake, name: str) -> list[dict]:
    """One row per version of table `name`, newest first (HISTORY_SCHEMA's columns)."""
    dt = lake.table(name)
    rows = []
    for n, info in enumerate(dt.history()):
        rows.append({"table": name, "version": info.get("version", dt.version() - n),
                     "timestamp": _dt.datetime.fromtimestamp(info["timestamp"] / 1000, _dt.timezone.utc),
                     "operation": info.get("operation"), "files_added": _first(info, _ADDED),
                     "files_removed": _first(info, _REMOVED), "rows": _first(info, _ROWS),
                     "parameters": _parameters(info)})
    return rows


def history(lake: Lake, names: list[str] | None = None) -> pa.Table:
    """The versions of every existing table (or of `names`), table by table in the lake's order, newest first."""
    for n in names or []:
        if n not in table_names():
            raise ValueError(f"no lake table {n!r} (tables: {', '.join(table_names())})")
    rows = [r for n in (names or table_names()) if lake.exists(n) for r in table_history(lake, n)]
    return pa.Table.from_pylist(rows, HISTORY_SCHEMA)


def parse_versions(specs: list[str]) -> dict[str, int]:
    """`TABLE=N` specs as {table: version}; ValueError naming the bad spec."""
    out = {}
    for spec in specs:
        name, _, v = spec.partition("=")
        if name not in table_names() or not v.strip().isdigit():
            raise ValueError(f"--version {spec!r}: expected TABLE=N with TABLE one of the lake's tables "
                             f"({', '.join(table_names())}) and N a version number")
        out[name] = int(v)
    return out


def parse_time(text: str) -> _dt.datetime:
    """An ISO 8601 date or time; without a zone it is UTC (the zone of the lake's commit times)."""
    try:
        t = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--as-of {text!r}: expected an ISO 8601 time, YYYY-MM-DDTHH:MM:SS (UTC unless "
                         "a zone is given)") from None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def snapshots(lake: Lake, versions: dict[str, int] | None = None, as_of: _dt.datetime | None = None
              ) -> tuple[dict[str, DeltaTable], dict[str, str]]:
    """The tables to read at another snapshot than the current one: each table of `versions` at its version, and
    with `as_of` every existing table at its last version committed at or before that time. Returns
    (table -> loaded DeltaTable, table -> why it cannot be read then): a version that does not exist, a table
    created after `as_of`."""
    loaded, missing = {}, {}
    for name in table_names():
        if not lake.exists(name) or (name not in (versions or {}) and as_of is None):
            continue
        try:
            if versions and name in versions:
                loaded[name] = DeltaTable(str(lake.path(name)), version=versions[name])
            else:
                dt = lake.table(name)
                dt.load_as_version(as_of)
                loaded[name] = dt
        except Exception as e:  # delta-rs: no such version, or no version that early
            when = f"version {versions[name]}" if versions and name in versions else f"as of {as_of.isoformat()}"
            missing[name] = f"table {name} has no {when} ({type(e).__name__}: {e})"
    for name in set(versions or {}) - set(loaded) - set(missing):
        missing[name] = f"table {name} does not exist under {lake.root}"
    return loaded, missing
