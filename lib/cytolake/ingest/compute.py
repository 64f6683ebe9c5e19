"""The Spark work of the ingest job: the sections to inspect go out and their `sections` rows come back as
Arrow record batches, a task per few sections (a section's content hash reads its whole image)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from cytolake.ingest.scan import entry
from cytolake.ingest.sections import Checks, inspect_section
from cytolake.lake.keys import row_keys
from cytolake.schemas import schema

_REUSED = ["file_size", "file_mtime_ns", "content_hash"]  # a registered row's hash is reused when the file is unchanged


def _inspect_task(checks: Checks, now: datetime):
    out = schema("sections")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            rows = [inspect_section(entry(r), {k: r[f"prev_{k}"] for k in _REUSED}, checks, now)
                    for r in b.to_pylist()]  # one manifest entry each: a section's parameters, not its data
            yield from out.table(rows).to_batches()

    return run


def inspected(spark, todo: pa.Table, registered: pa.Table, checks: Checks, now: datetime) -> pa.Table:
    """The `sections` rows of the `todo` (LANDED) rows, inspected on Spark."""
    if not todo.num_rows:
        return schema("sections").empty()
    at = pc.index_in(row_keys(todo, ["brain_id", "section_id"]), value_set=row_keys(registered, ["brain_id", "section_id"]))
    for k in _REUSED:
        todo = todo.append_column(f"prev_{k}", pc.take(registered[k], at))
    sc = spark.sparkContext
    out = schema("sections")
    return (spark.createDataFrame(todo).repartition(min(todo.num_rows, max(sc.defaultParallelism * 4, 1)))
            .mapInArrow(_inspect_task(checks, now), out.spark()).toArrow().cast(out.arrow()))
