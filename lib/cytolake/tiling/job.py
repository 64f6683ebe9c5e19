"""The tile job: every `ok` section without current patches -> patches, committed once per run.

Read state -> `plan_tile` (tiling/plan.py) -> stage A and B on Spark (tiling/compute.py) -> one commit
that replaces each changed brain's partition: recomputed sections plus the unchanged sections' current rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cytolake.atlas.pmaps import Atlas
from cytolake.atlas.registered import registered_areas
from cytolake.config import Settings
from cytolake.engines.spark import write_dataframe
from cytolake.lake import Lake
from cytolake.tiling import compute
from cytolake.tiling.plan import STATE, brains_to_rewrite, failed_sections, plan_tile


@dataclass
class TileSummary:
    tiled: dict[tuple[str, int], int] = field(default_factory=dict)  # (brain, section) -> patches
    failed: dict[tuple[str, int], str] = field(default_factory=dict)
    committed_brains: list[str] = field(default_factory=list)
    version: int | None = None


def run_tile(settings: Settings, spark, brains: list[str] | None = None, log=print) -> TileSummary:
    tiling = settings.tiling
    lake = Lake(settings.paths.lake)
    summary = TileSummary()
    atlas = Atlas(settings.atlas)
    area_index_of = {a["area_id"]: a["area_index"] for a in registered_areas(lake, atlas)}
    sections = lake.read("sections")
    plan = plan_tile(sections, lake.read("patches", STATE).group_by(STATE).aggregate([]), tiling, brains)
    log(f"tile: {plan.todo.num_rows + plan.keep.num_rows} ok sections, {plan.todo.num_rows} to tile, "
        f"geometry {tiling.patch_px} px at {tiling.spacing_um:g} um/px")
    if plan.empty:
        return summary
    centres = compute.stage_a(spark, plan, tiling, np.linalg.inv(atlas.affine), area_index_of)
    done = compute.outcomes(centres)
    for b, sid, n, err in zip(*(done[c].to_pylist() for c in ("brain_id", "section_id", "n_patches", "error"))):
        if err:
            summary.failed[(b, sid)] = err
        else:
            summary.tiled[(b, sid)] = n
    if summary.failed:
        lake.merge("sections", failed_sections(sections, done))
    for b, sid in sorted(k for k, n in summary.tiled.items() if n == 0):
        log(f"  section {b}/{sid}: 0 patches (no cortex in its mask); it is examined again on the next run")
    dirty = brains_to_rewrite(plan, done)
    if dirty:
        rows = compute.patches(spark, lake, centres, plan, dirty, len(area_index_of), sum(map(bool, summary.tiled.values())))
        summary.version = write_dataframe(lake, "patches", rows, "replace_partitions", {"brain_id": dirty})
        summary.committed_brains = dirty
    centres.unpersist()
    return summary
