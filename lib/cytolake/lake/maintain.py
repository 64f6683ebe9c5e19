"""Lake upkeep: compact small files, then vacuum what no version inside the retention window needs.

Incremental jobs leave many small files (one per Spark task and partition per run); compaction rewrites
each partition's small files into files of about `target_file_mb`, in one commit per table, rows
unchanged. Vacuum then deletes from disk the files that the current version does not reference and that
were removed (or, for files no commit ever named - left by a killed job - written) more than
`retention_days` ago: time travel keeps working for versions younger than that. It must not overlap a
writing job (vacuum would delete a running job's not-yet-committed files), so the caller holds the lock.

Before anything is compacted or deleted, every table is checked (`lake.check`): a table whose files and log
disagree (a file the log names is missing or of another size or row count, a log entry cut or damaged)
stops the whole run with `LakeDamaged` naming it. Vacuum on such a table would delete the very files that
a repaired log still needs: a cut commit entry leaves its files unnamed, which vacuum cannot tell from a
killed job's leftovers.
"""

from __future__ import annotations

from pathlib import Path

from cytolake.lake.check import LakeDamaged, check_lake
from cytolake.lake.tables import Lake
from cytolake.schemas import table_names


def maintain(lake: Lake, retention_days: float, target_file_mb: int, log=print) -> list[dict]:
    """Per table: files before and after, files compaction wrote, files vacuum removed, the version after."""
    problems = [p for ps in check_lake(lake).values() for p in ps]
    if problems:
        raise LakeDamaged(problems, "maintain")
    rows = []
    for name in table_names():
        if not lake.exists(name):
            continue
        root = Path(lake.path(name))
        dt = lake.table(name)
        before = len(dt.file_uris())
        m = dt.optimize.compact(target_size=target_file_mb << 20)
        dt = lake.table(name)
        hours = int(retention_days * 24)
        # delta-rs lists a removed file again after it is gone, and commits a vacuum even then: only files
        # still on disk count, and with none there is no vacuum (and no new version).
        doomed = [p for p in dt.vacuum(retention_hours=hours, dry_run=True, enforce_retention_duration=False, full=True)
                  if (root / p).exists()]
        if doomed:
            dt.vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False, full=True)
        removed = sum(not (root / p).exists() for p in doomed)
        dt = lake.table(name)
        rows.append({"table": name, "files_before": before, "files_after": len(dt.file_uris()),
                     "files_added": m.get("numFilesAdded", 0), "vacuumed": removed, "version": dt.version()})
        log(f"maintain {name}: {before} -> {rows[-1]['files_after']} files, {removed} removed from disk")
    return rows
