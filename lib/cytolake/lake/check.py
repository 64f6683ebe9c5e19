"""Is each lake table whole? The snapshot's files against its Delta log, and each log entry against itself.

What is checked, per table, and why each rule can be trusted:

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

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from cytolake.lake.tables import Lake, writer_problem
from cytolake.schemas import table_names

# (added, removed) count keys in a commitInfo: ours, then delta-rs's for write/delete, merge and optimize.
_COUNT_KEYS = [("cytolake.adds", "cytolake.removes"), ("num_added_files", "num_removed_files"),
               ("num_target_files_added", "num_target_files_removed"), ("numFilesAdded", "numFilesRemoved")]
_VERSION_FILE = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT_FILE = re.compile(r"^(\d{20})\.checkpoint(\.\d+\.\d+)?\.parquet$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one table: the file it concerns (a data file or a log entry) and what is wrong."""

    table: str
    file: str
    message: str

    def __str__(self) -> str:
        return f"table {self.table}: {self.file}: {self.message}"


class LakeDamaged(RuntimeError):
    """A table's files and its log disagree; nothing that deletes or rewrites files may run."""

    def __init__(self, problems: list[Problem], doing: str):
        self.problems = problems
        tables = sorted({p.table for p in problems})
        super().__init__(f"refusing to {doing}: table(s) {', '.join(tables)} damaged "
                         f"(run `cytolake check` for the list):\n" + "\n".join(f"  {p}" for p in problems))


def _counts(info: dict) -> tuple[int, int] | None:
    metrics = info.get("operationMetrics") or {}
    for a, r in _COUNT_KEYS:
        for src in (info, metrics):
            if a in src and r in src:
                try:
                    return int(src[a]), int(src[r])
                except (TypeError, ValueError):
                    return None
    return None


def check_log(table: str, root: Path) -> list[Problem]:
    """Rules 1-3 over the table's `_delta_log` folder."""
    log = root / "_delta_log"
    problems: list[Problem] = []
    versions = sorted(int(m.group(1)) for p in log.iterdir() if (m := _VERSION_FILE.match(p.name)))
    checkpoints = [int(m.group(1)) for p in log.iterdir() if (m := _CHECKPOINT_FILE.match(p.name))]
    if not versions:
        return [Problem(table, str(log), "no commit files")]
    cp = max((c for c in checkpoints if c <= versions[-1]), default=-1)
    missing = sorted(set(range(cp + 1, versions[-1] + 1)) - set(versions))
    if missing:
        problems.append(Problem(table, str(log), f"commit versions {missing} are missing"))
    for v in versions:
        path = log / f"{v:020d}.json"
        infos, adds, removes = [], 0, 0
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            problems.append(Problem(table, str(path), f"unreadable ({type(e).__name__}: {e})"))
            continue
        bad = None
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                action = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as e:
                bad = f"line {n} is not valid JSON ({e})"
                break
            if not isinstance(action, dict):
                bad = f"line {n} is not a Delta action"
                break
            infos += [action["commitInfo"]] if "commitInfo" in action else []
            adds += "add" in action
            removes += "remove" in action
        if bad:
            problems.append(Problem(table, str(path), bad))
            continue
        if len(infos) != 1 or not isinstance(infos[0], dict):
            problems.append(Problem(table, str(path), f"{len(infos)} commitInfo lines, expected 1 (the entry "
                                                      "was not written whole)"))
            continue
        want = _counts(infos[0])
        if want is not None and want != (adds, removes):
            problems.append(Problem(table, str(path), f"the commit says it added {want[0]} and removed {want[1]} "
                                                      f"files, the entry holds {adds} add and {removes} remove "
                                                      "actions (the entry was cut)"))
    return problems


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


def damaged_log_file(lake: Lake, table: str) -> str | None:
    """The first log entry that rules 1-3 find wrong, for messages about a table that will not load."""
    problems = check_log(table, lake.path(table))
    return problems[0].file if problems else None
