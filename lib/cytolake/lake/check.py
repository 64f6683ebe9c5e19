"""Is each lake table whole? The snapshot's files against its Delta log, and each log entry against itself.

What is checked, per table, and why each rule can be trusted (rules 1-3 read the log folder alone:
`lake/delta_log.py`):

1. Every `_delta_log/<version>.json` parses, line by line, and versions run without gaps after the last
   checkpoint. A damaged log entry is named by its file.
2. Every version file holds a `commitInfo` line. delta-rs writes one in every commit it makes (ours and its
   own merge, delete, optimize and vacuum), so a version file without one was not written whole.
3. Where a commit says how many files it added and removed, the version file holds exactly that many `add`
   and `remove` lines. Our writer records its counts in the commit (`cytolake.adds`, `cytolake.removes`,
   see `Lake.commit`); delta-rs records them for its own operations (`operationMetrics`). This is what
   catches a commit cut at a line boundary: the cut entry is still valid JSON lines, and `commitInfo` is
   its first line, so rules 1 and 2 pass. (Commits written before the counts were recorded are checked by
   rules 1, 2 and 4 only.)
4. Every file of the current snapshot is on disk with the size the log gives, and its Parquet footer holds
   the row count the log's statistics give.
5. The table's protocol asks for no newer writer than cytolake is (`tables.writer_problem`): such a table
   reads fine, and every write to it would fail at its commit after the files were written.

What is not a problem: a Parquet file in the table folder that no log entry names. That is what a job
killed before its commit leaves (its files are written, never committed) and what `maintain` exists to
vacuum; nothing in the table's history depends on it.
"""

from __future__ import annotations

import os

import pyarrow.parquet as pq

from cytolake.lake.delta_log import Problem, check_log
from cytolake.lake.tables import Lake, writer_problem
from cytolake.schemas import table_names


class LakeDamaged(RuntimeError):
    """A table's files and its log disagree; nothing that deletes or rewrites files may run."""

    def __init__(self, problems: list[Problem], doing: str):
        self.problems = problems
        tables = sorted({p.table for p in problems})
        super().__init__(f"refusing to {doing}: table(s) {', '.join(tables)} damaged "
                         f"(run `cytolake check` for the list):\n" + "\n".join(f"  {p}" for p in problems))


def check_snapshot(lake: Lake, table: str) -> list[Problem]:
    """Rule 4 over the current snapshot: each file present, of the logged size and row count."""
    root = lake.path(table)
    try:
        adds = lake.files(table).to_pylist()
    except Exception as e:  # delta-rs raises several kinds of error on a damaged log
        return [Problem(table, str(root / "_delta_log"), f"the snapshot cannot be loaded ({type(e).__name__}: {e})")]
    problems = []
    for a in adds:
        path = root / a["path"]
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            problems.append(Problem(table, str(path), "missing (the log names it, the folder does not hold it)"))
            continue
        if a.get("size_bytes") is not None and size != a["size_bytes"]:
            problems.append(Problem(table, str(path), f"{size} bytes on disk, the log says {a['size_bytes']}"))
            continue
        try:
            rows = pq.read_metadata(path).num_rows
        except Exception as e:  # pyarrow raises OSError or ArrowInvalid on a damaged footer
            problems.append(Problem(table, str(path), f"unreadable Parquet footer ({type(e).__name__}: {e})"))
            continue
        if a.get("num_records") is not None and rows != a["num_records"]:
            problems.append(Problem(table, str(path), f"{rows} rows in the file, the log says {a['num_records']}"))
    return problems


def check_protocol(lake: Lake, table: str) -> list[Problem]:
    """Rule 5: a protocol this cytolake cannot write (a table that does not load is rule 4's problem)."""
    try:
        why = writer_problem(lake.table(table))
    except Exception:  # delta-rs raises several kinds of error on a damaged log
        return []
    return [] if why is None else [Problem(table, str(lake.path(table) / "_delta_log"), why)]


def check_table(lake: Lake, table: str) -> list[Problem]:
    """Every problem found with one table (empty: the table is whole and writable)."""
    return check_log(table, lake.path(table)) + check_snapshot(lake, table) + check_protocol(lake, table)


def check_lake(lake: Lake) -> dict[str, list[Problem]]:
    """Per existing table, its problems."""
    return {name: check_table(lake, name) for name in table_names() if lake.exists(name)}
