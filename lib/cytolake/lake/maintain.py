"""Lake upkeep: compact small files, then vacuum what no version inside the retention window needs.

Incremental jobs leave many small files (one per Spark task and partition per run); compaction rewrites
each partition's small files into files of about `target_file_mb`, in one commit per table, rows
unchanged. Vacuum then deletes from disk the files that the current version does not reference and that
were removed (or, for files no commit ever named - left by a killed job - written) more than
`retention_days` ago: time travel keeps working for versions younger than that. It must not overlap a
writing job (vacuum would delete a running job's not-yet-committed files), so the caller holds the lock.
"""

from __future__ import annotations

from cytolake.lake.tables import Lake
from cytolake.schemas import table_names


def maintain(lake: Lake, retention_days: float, target_file_mb: int, log=print) -> list[dict]:
    """Per table: files before and after, files compaction wrote, files vacuum removed, the version after."""
    rows = []
    for name in table_names():
        if not lake.exists(name):
            continue
        dt = lake.table(name)
        before = len(dt.file_uris())
        m = dt.optimize.compact(target_size=target_file_mb << 20)
        dt = lake.table(name)
        removed = dt.vacuum(retention_hours=int(retention_days * 24), dry_run=False,
                            enforce_retention_duration=False, full=True)
        dt = lake.table(name)
        rows.append({"table": name, "files_before": before, "files_after": len(dt.file_uris()),
                     "files_added": m.get("numFilesAdded", 0), "vacuumed": len(removed), "version": dt.version()})
        log(f"maintain {name}: {before} -> {rows[-1]['files_after']} files, {len(removed)} removed from disk")
    return rows
