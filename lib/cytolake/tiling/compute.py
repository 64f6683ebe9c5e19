"""The Spark work of the tile job; rows cross Spark as Arrow record batches.

Stage A (a task per section) finds the centres; their pmap vectors come from a Spark join of each centre's
8 trilinear corner voxels with the sparse `pmaps` table; stage B (a task per window block) reads the pixels.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from cytolake.atlas.join import with_pmap
from cytolake.config import TilingSettings
from cytolake.engines.spark import read_dataframe, rows_with_keys
from cytolake.lake import Lake
from cytolake.schemas import schema
from cytolake.tiling.patches import read_patches
from cytolake.tiling.plan import KEY, TilePlan
from cytolake.tiling.sections import centres_task, outcome_schema


def stage_a(spark, plan: TilePlan, tiling: TilingSettings, inv_affine: np.ndarray, area_index_of: dict[int, int]):
    """The centres of the plan's sections (`outcome_schema`), persisted: stage B and the outcomes both read them."""
    sc = spark.sparkContext
    tasks = max(1, min(plan.todo.num_rows, sc.defaultParallelism * 4))
    todo = plan.todo.drop_columns(["ingested_at"])
    if not todo.num_rows:  # only removals: Spark cannot take a table without chunks, the empty table has one
        todo = todo.schema.empty_table()
    return (spark.createDataFrame(todo).repartition(tasks)
            .mapInArrow(centres_task(tiling, inv_affine, area_index_of), from_arrow_schema(outcome_schema()))
            .persist(StorageLevel.MEMORY_AND_DISK))


def outcomes(centres) -> pa.Table:
    """brain_id, section_id, n_patches, error for each section stage A saw."""
    return centres.groupBy(*KEY).agg(F.count("patch_id").alias("n_patches"),
                                     F.first("error", ignorenulls=True).alias("error")).toArrow()


def patches(spark, lake: Lake, centres, plan: TilePlan, dirty: list[str], n_areas: int, n_tiled: int):
    """The new `patches` rows of the dirty brains: the recomputed sections' plus the current sections' rows."""
    new_centres = centres.filter(F.col("patch_id").isNotNull() & F.col("brain_id").isin(dirty)).drop("error")
    pmapped = with_pmap(spark, lake, new_centres, ["patch_id"], n_areas)
    n_parts = max(1, 2 * n_tiled)  # about two block tasks per tiled section
    new = pmapped.repartition(n_parts, "brain_id", "section_id", "block").mapInArrow(read_patches, schema("patches").spark())
    keep = plan.keep.filter(pc.is_in(plan.keep["brain_id"], value_set=pa.array(dirty, pa.string())))
    old = rows_with_keys(spark, read_dataframe(spark, lake, "patches").filter(F.col("brain_id").isin(dirty)), keep)
    return new.unionByName(old)
