"""Each Delta log entry of a table against itself: rules 1-3 of `lake/check.py`, on the `_delta_log` folder alone.

They need no loaded table, so they also name the damaged entry of a table that will not load (`Lake.stats`,
the SQL engines' messages).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

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


def damaged_log_file(table: str, root: Path) -> str | None:
    """The first log entry of the table at `root` that rules 1-3 find wrong, for messages about a table that
    will not load."""
    problems = check_log(table, root)
    return problems[0].file if problems else None
