"""What the ingest job has to do, decided from Arrow tables alone (no Spark, no lake I/O).

A brain's sections are inspected again unless its manifest is byte for byte the registered one and every
section is registered `ok` with the same file size and mtime and the same warp (by content); a section gone
from an ok manifest leaves `sections`; a brain whose manifest cannot be read keeps its registered sections.
After inspection, only rows that differ from the registered ones are committed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from cytolake.ingest import scan
from cytolake.ingest.sections import COMPARED
from cytolake.io.arrow import of_brains
from cytolake.lake.keys import rows_in

KEY = ["brain_id", "section_id"]
BRAIN_COMPARED = ["status", "error", "manifest_uri", "manifest_hash", "n_sections", "n_ok", "n_error"]
ON_DISK = scan.ON_DISK.names  # registered `ok` and as on disk


@dataclass(frozen=True)
class IngestPlan:
    inspect: pa.Table  # the `landed` rows of the sections to inspect
    removed: pa.Table  # brain_id, section_id of registered sections no longer in their (readable) manifest
    brains: pa.Table  # the `brains` rows, n_ok and n_error still to count for the brains inspected


def plan_ingest(registered: pa.Table, registered_brains: pa.Table, landed: pa.Table,
                landed_brains: pa.Table) -> IngestPlan:
    """`registered`, `registered_brains`: the lake's `sections` and `brains`. `landed_brains`: a `brains` row
    per manifest found (status `error` with the message when it cannot be read; n_ok, n_error 0). `landed`:
    per manifest entry brain_id, section_id and, as found on disk, status (`ok`, or `error` for an entry
    that is bad in itself or whose image is missing), file_size, file_mtime_ns, warp_uri, warp_hash."""
    readable = landed_brains.filter(pc.equal(landed_brains["status"], "ok"))["brain_id"]
    landed, registered = of_brains(landed, readable), of_brains(registered, readable)
    was_ok = registered_brains.filter(pc.equal(registered_brains["status"], "ok"))
    same_manifest = was_ok.filter(rows_in(was_ok, landed_brains, ["brain_id", "manifest_hash"]))["brain_id"]
    as_registered = pc.and_(pc.equal(landed["status"], "ok"), rows_in(landed, registered, KEY + ON_DISK))
    moved = landed.filter(pc.invert(as_registered))["brain_id"]
    current = pc.and_(pc.is_in(readable, value_set=same_manifest), pc.invert(pc.is_in(readable, value_set=moved)))
    stale = readable.filter(pc.invert(current))
    brains = _counted(landed_brains, registered_brains, readable.filter(current))
    return IngestPlan(inspect=of_brains(landed, stale),
                      removed=registered.filter(pc.invert(rows_in(registered, landed, KEY))).select(KEY),
                      brains=brains)


def _counted(landed_brains: pa.Table, registered_brains: pa.Table, current: pa.Array) -> pa.Table:
    """`landed_brains` with the registered n_ok, n_error of the brains whose sections are current."""
    kept = of_brains(registered_brains, current)
    at = pc.index_in(landed_brains["brain_id"], value_set=kept["brain_id"])
    out = landed_brains
    for c in ("n_ok", "n_error"):
        out = out.set_column(out.schema.get_field_index(c), c,
                             pc.coalesce(pc.take(kept[c], at), pa.scalar(0, out.schema.field(c).type)))
    return out


def counted_brains(brains: pa.Table, inspected: pa.Table) -> pa.Table:
    """The plan's `brains` rows with n_ok and n_error counted from the inspected `sections` rows."""
    if not inspected.num_rows:
        return brains
    ok = pc.cast(pc.equal(inspected["status"], "ok"), pa.int32())
    n = (inspected.select(["brain_id"]).append_column("ok", ok)
         .group_by("brain_id").aggregate([("ok", "sum"), ("ok", "count")]))
    at = pc.index_in(brains["brain_id"], value_set=n["brain_id"])
    n_ok = pc.cast(pc.take(n["ok_sum"], at), pa.int32())
    n_error = pc.subtract(pc.cast(pc.take(n["ok_count"], at), pa.int32()), n_ok)
    for c, v in (("n_ok", n_ok), ("n_error", n_error)):
        brains = brains.set_column(brains.schema.get_field_index(c), c, pc.coalesce(v, brains[c]))
    return brains


def changed_sections(inspected: pa.Table, registered: pa.Table) -> pa.Table:
    """The inspected rows that differ from their registered row (new sections included)."""
    return inspected.filter(pc.invert(rows_in(inspected, registered, KEY + COMPARED)))


def changed_brains(brains: pa.Table, registered_brains: pa.Table) -> pa.Table:
    return brains.filter(pc.invert(rows_in(brains, registered_brains, ["brain_id", *BRAIN_COMPARED])))
