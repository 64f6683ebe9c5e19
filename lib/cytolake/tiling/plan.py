"""What the tile job has to do, decided from Arrow tables alone (no Spark, no lake I/O).

A section's patches are current when they were cut from this image (`content_hash`), with these settings and
this warp (`tiling_hash`, the placement hash) into this split; every other `ok` section is tiled again. A brain
is rewritten when one of its sections gained or lost patches, or when it holds patches of a section that is
no longer `ok` (removed from its manifest, or failed).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from cytolake.config import TilingSettings
from cytolake.io.arrow import of_brains
from cytolake.lake.keys import row_keys, rows_in
from cytolake.tiling.geometry import assign_splits, placement_hash, tiling_hash

KEY = ["brain_id", "section_id"]
STATE = [*KEY, "content_hash", "tiling_hash", "split"]  # what makes a section's patches current


@dataclass(frozen=True)
class TilePlan:
    todo: pa.Table  # sections to tile: their registry row, `split`, `tiling_hash` and `has_patches`
    keep: pa.Table  # brain_id, section_id of the sections whose patches are current
    stale_brains: list[str]  # brains holding patches of sections that are no longer ok

    @property
    def empty(self) -> bool:
        return self.todo.num_rows == 0 and not self.stale_brains


def plan_tile(sections: pa.Table, tiled: pa.Table, tiling: TilingSettings, brains: list[str] | None = None) -> TilePlan:
    """`sections`: the registry; `tiled`: one row per section that has patches, with the STATE columns."""
    ok = of_brains(sections.filter(pc.equal(sections["status"], "ok")), brains or None)
    tiled = of_brains(tiled, brains or None)
    ids, sids = ok["brain_id"].to_pylist(), ok["section_id"].to_pylist()
    splits = assign_splits(list(zip(ids, sids, (bool(a) for a in ok["annotation_uri"].to_pylist()))), tiling)
    th = tiling_hash(tiling)
    wanted = (ok.append_column("split", pa.array([splits[k] for k in zip(ids, sids)], pa.string()))
              .append_column("tiling_hash", pa.array([placement_hash(th, w) for w in ok["warp_hash"].to_pylist()],
                                                     pa.string())))
    current = rows_in(wanted, tiled, STATE)
    todo = wanted.filter(pc.invert(current))
    stale = tiled.filter(pc.invert(rows_in(tiled, wanted, KEY)))
    return TilePlan(todo=todo.append_column("has_patches", rows_in(todo, tiled, KEY)),
                    keep=wanted.filter(current).select(KEY),
                    stale_brains=sorted(set(stale["brain_id"].to_pylist())))


def brains_to_rewrite(plan: TilePlan, outcomes: pa.Table) -> list[str]:
    """Brains whose `patches` partition changes, given the outcome of each section of `plan.todo`
    (brain_id, section_id, n_patches, error): a section that got patches, or that had patches and now has
    other ones, none, or an error, changes its brain; a section with none before and none now does not."""
    had = rows_in(outcomes, plan.todo.filter(plan.todo["has_patches"]), KEY)
    changed = outcomes.filter(pc.or_(pc.greater(outcomes["n_patches"], 0), had))
    return sorted(set(changed["brain_id"].to_pylist()) | set(plan.stale_brains))


def failed_sections(sections: pa.Table, outcomes: pa.Table) -> pa.Table:
    """The registry rows of the sections that could not be tiled, marked `error` with the message."""
    failed = outcomes.filter(pc.is_valid(outcomes["error"]))
    rows = sections.filter(rows_in(sections, failed, KEY))
    at = pc.index_in(row_keys(rows, KEY), value_set=row_keys(failed, KEY))
    rows = rows.set_column(rows.schema.get_field_index("error"), "error", pc.take(failed["error"], at))
    return rows.set_column(rows.schema.get_field_index("status"), "status",
                           pa.array(["error"] * rows.num_rows, rows.schema.field("status").type))
