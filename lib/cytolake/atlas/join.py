"""Pmap vectors by a Spark join: points carry their 8 trilinear corner voxels (`ci`, `cj`, `ck`, weights
`cw`), which are joined with the sparse `pmaps` table and summed per area. No dense volume is shipped
to the tasks, whatever the atlas size."""

from __future__ import annotations

from pyspark.sql import functions as F

from cytolake.atlas.corners import CORNER_COLUMNS
from cytolake.engines.spark import read_dataframe
from cytolake.lake import Lake


def _dense_pmap(n_areas: int):
    entries = F.map_from_entries(F.col("entries"))
    return F.when(F.col("entries").isNull(), F.array_repeat(F.lit(0.0).cast("float"), n_areas)).otherwise(
        F.transform(F.sequence(F.lit(0), F.lit(n_areas - 1)),
                    lambda i: F.coalesce(F.element_at(entries, i), F.lit(0.0)).cast("float")))


def with_pmap(spark, lake: Lake, points, keys: list[str], n_areas: int):
    """`points` (unique by `keys`, with corner columns) plus `pmap`: the dense vector in areas order."""
    corners = points.select(*keys, F.inline(F.arrays_zip(*CORNER_COLUMNS)))
    pm = read_dataframe(spark, lake, "pmaps").select(
        F.col("voxel_i").cast("long").alias("ci"), F.col("voxel_j").cast("long").alias("cj"),
        F.col("voxel_k").cast("long").alias("ck"), "area_index", "probability")
    vec = (corners.join(pm, ["ci", "cj", "ck"])
           .groupBy(*keys, "area_index").agg(F.sum(F.col("cw") * F.col("probability")).alias("p"))
           .groupBy(*keys).agg(F.collect_list(F.struct("area_index", "p")).alias("entries")))
    return points.join(vec, keys, "left").withColumn("pmap", _dense_pmap(n_areas)).drop("entries")
