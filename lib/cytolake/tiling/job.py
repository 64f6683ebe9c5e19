"""The tile job: every `ok` section without current patches -> patches, committed once per run.

Stage A (a task per section) finds the centres; their pmap vectors come from a Spark join of each
centre's 8 trilinear corner voxels with the sparse `pmaps` table; stage B (a task per window block)
reads the pixels. A brain whose patches change is rewritten in one commit that replaces its
partition: recomputed sections plus the unchanged sections' current rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from cytolake.atlas.join import corner_fields, with_pmap
from cytolake.atlas.pmaps import Atlas
from cytolake.atlas.registered import registered_areas
from cytolake.config import Settings
from cytolake.lake import Lake
from cytolake.lake.spark import read_dataframe, write_dataframe
from cytolake.schemas import schema
from cytolake.tiling.geometry import assign_splits, placement_hash, tiling_hash
from cytolake.tiling.patches import read_patches
from cytolake.tiling.sections import section_centres

_EXTRA = [("image_uri", StringType()), ("level", IntegerType()), ("window_px", IntegerType()), ("block", StringType())]


@dataclass
class TileSummary:
    tiled: dict[tuple[str, int], int] = field(default_factory=dict)  # (brain, section) -> patches
    failed: dict[tuple[str, int], str] = field(default_factory=dict)
    committed_brains: list[str] = field(default_factory=list)
    version: int | None = None


def _centre_schema() -> StructType:
    base = [f for f in schema("patches").spark().fields if f.name not in ("pmap", "image")]
    return StructType(base + [StructField(n, t) for n, t in _EXTRA] + corner_fields())


def run_tile(settings: Settings, spark, brains: list[str] | None = None, log=print) -> TileSummary:
    t = settings.tiling
    lake = Lake(settings.paths.lake)
    summary = TileSummary()
    atlas = Atlas(settings.atlas)
    areas = registered_areas(lake, atlas)
    area_index_of = {a["area_id"]: a["area_index"] for a in areas}
    n_areas = len(areas)
    th = tiling_hash(t)

    secs = [s for s in lake.read("sections").to_pylist() if s["status"] == "ok" and (not brains or s["brain_id"] in brains)]
    splits = assign_splits([(s["brain_id"], s["section_id"], bool(s["annotation_uri"])) for s in secs], t)
    # A section is current when its patches were cut from this image, with this geometry and warp, into its split.
    cols = ["brain_id", "section_id", "content_hash", "tiling_hash", "split"]
    tiled = lake.read("patches", cols).group_by(cols).aggregate([])  # one row per tiled section, computed in Arrow
    current = {(r["brain_id"], r["section_id"]): (r["content_hash"], r["tiling_hash"], r["split"])
               for r in tiled.to_pylist() if not brains or r["brain_id"] in brains}
    wanted = {(s["brain_id"], s["section_id"]): (s["content_hash"], placement_hash(th, s.get("warp_hash")),
                                                 splits[(s["brain_id"], s["section_id"])]) for s in secs}
    ok_keys = set(wanted)
    todo = [s for s in secs if current.get((s["brain_id"], s["section_id"])) != wanted[(s["brain_id"], s["section_id"])]]
    stale_brains = {b for (b, sid) in current if (b, sid) not in ok_keys}
    log(f"tile: {len(secs)} ok sections, {len(todo)} to tile, geometry {t.patch_px} px at {t.spacing_um:g} um/px")
    if not todo and not stale_brains:
        return summary

    inv = np.linalg.inv(atlas.affine)
    sc = spark.sparkContext
    stage_a = sc.parallelize(todo, numSlices=max(1, min(len(todo), sc.defaultParallelism * 4))).map(
        lambda s: (s["brain_id"], s["section_id"],
                   *section_centres(s, t, splits[(s["brain_id"], s["section_id"])], inv, area_index_of,
                                    placement_hash(th, s.get("warp_hash")))))
    stage_a = stage_a.persist(StorageLevel.MEMORY_AND_DISK)
    for b, sid, rows, err in stage_a.map(lambda r: (r[0], r[1], len(r[2]), r[3])).collect():
        if err:
            summary.failed[(b, sid)] = err
        else:
            summary.tiled[(b, sid)] = rows
    if summary.failed:
        _record_failures(lake, summary.failed)
    for b, sid in sorted(k for k, n in summary.tiled.items() if n == 0):
        log(f"  section {b}/{sid}: 0 patches (no cortex in its mask); it is examined again on the next run")

    dirty = {b for (b, sid), n in summary.tiled.items() if n or current.get((b, sid))} | stale_brains
    dirty |= {b for (b, sid) in summary.failed if (b, sid) in current}
    if not dirty:
        stage_a.unpersist()
        return summary
    centres = spark.createDataFrame(stage_a.flatMap(lambda r: r[2]), _centre_schema()).filter(F.col("brain_id").isin(sorted(dirty)))
    pmapped = with_pmap(spark, lake, centres, ["patch_id"], n_areas)
    n_parts = max(1, 2 * sum(1 for n in summary.tiled.values() if n))  # about two block tasks per tiled section
    new = pmapped.repartition(n_parts, "brain_id", "section_id", "block").mapInArrow(read_patches, schema("patches").spark())
    keep_keys = [k for k in ok_keys if k[0] in dirty and current.get(k) == wanted[k]]
    old = read_dataframe(spark, lake, "patches").filter(F.col("brain_id").isin(sorted(dirty)))
    if keep_keys:
        keep = spark.createDataFrame(keep_keys, "brain_id string, section_id int")
        old = old.join(F.broadcast(keep), ["brain_id", "section_id"], "left_semi")
    else:
        old = old.limit(0)
    summary.version = write_dataframe(lake, "patches", new.unionByName(old), "replace_partitions",
                                      {"brain_id": sorted(dirty)})
    summary.committed_brains = sorted(dirty)
    stage_a.unpersist()
    return summary


def _record_failures(lake: Lake, failed: dict[tuple[str, int], str]) -> None:
    """Mark sections that could not be tiled as `error` in the registry, with the message."""
    rows = [{**r, "status": "error", "error": failed[(r["brain_id"], r["section_id"])]}
            for r in lake.read("sections").to_pylist() if (r["brain_id"], r["section_id"]) in failed]
    lake.merge("sections", schema("sections").table(rows))
