"""The build_graph job: per brain, in parallel over brains (a Spark task each), the surface graph of
one feature model; nodes get pmap vectors by the Spark join with `pmaps` and features by a join with
`features`. A rebuilt brain's (model, brain) partitions of `graph_edges` and `graph_nodes` are
replaced, edges first, each in one commit; both carry the build's `graph_hash`, so a reader can tell
a matching pair (`load_graph` refuses a mismatch). A brain whose inputs and settings are unchanged
(same graph_hash) is skipped, so a rerun commits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, LongType, StructField, StructType

from cytolake.atlas.join import with_pmap
from cytolake.atlas.pmaps import Atlas
from cytolake.config import Settings
from cytolake.graph.build import brain_graph
from cytolake.graph.plan import PATCH_KEYS, BrainWork, GraphPlan, plan_graphs
from cytolake.io.images import ImageError
from cytolake.lake import Lake
from cytolake.lake.spark import read_dataframe, write_dataframe
from cytolake.schemas import schema

_PATCH_COLS = ["brain_id", "patch_id", "section_id", "x", "y", "split", "content_hash", "tiling_hash"]
_CORNERS = [("ci", ArrayType(LongType())), ("cj", ArrayType(LongType())), ("ck", ArrayType(LongType())),
            ("cw", ArrayType(DoubleType()))]
_BULKY = ("nodes", "src", "dst", "mesh_vertices", "mesh_faces", "node_vertex")


@dataclass
class GraphSummary:
    built: dict[str, dict] = field(default_factory=dict)  # brain -> vertices, nodes, edges, components, seconds
    skipped: list[str] = field(default_factory=list)  # already current
    failed: dict[str, str] = field(default_factory=dict)
    version: int | None = None


def _node_schema() -> StructType:
    drop = {"model_version", "graph_hash", "pmap", "features"}
    return StructType([f for f in schema("graph_nodes").spark().fields if f.name not in drop]
                      + [StructField(n, t) for n, t in _CORNERS])


def _files(lake: Lake, table: str, prefix: str) -> list[str]:
    if not lake.exists(table):
        return []
    paths = pa.table(lake.table(table).get_add_actions(flatten=True))["path"].to_pylist()
    return sorted(p for p in paths if p.startswith(prefix))


def _areas(lake: Lake, atlas: Atlas) -> pa.Table:
    areas = lake.read("areas")
    if not areas.num_rows or set(areas["atlas_hash"].to_pylist()) != {atlas.hash}:
        raise RuntimeError(f"the lake's areas do not match the configured atlas {atlas.maps_path}: run ingest first")
    return areas


def _plan(settings: Settings, lake: Lake, model: str, brains: list[str] | None) -> GraphPlan:
    """The lake's current state, read, and handed to the pure plan."""
    of_model = pc.field("model_version") == model
    return plan_graphs(settings, model, lake.read("patches", _PATCH_COLS),
                       lake.read("features", ["brain_id", *PATCH_KEYS], filters=of_model), lake.read("sections"),
                       _files(lake, "patches", ""), _files(lake, "features", f"model_version={model}/"),
                       lake.read("graph_nodes", ["brain_id", "graph_hash"], filters=of_model),
                       lake.read("graph_meshes", ["brain_id", "graph_hash"], filters=of_model), brains)


def _task(args: tuple, g, t, area_index_of, inv, lo, hi) -> dict:
    brain, secs, patches = args
    try:
        return brain_graph(brain, secs, pa.table(patches), g, t, area_index_of, inv, lo, hi)
    except (ImageError, OSError, ValueError) as e:
        return {"brain_id": brain, "error": f"build_graph: {e}"}


def _task(w: BrainWork, g, t, area_index_of, inv, lo, hi) -> dict:
    try:
        return brain_graph(w.brain_id, w.sections, w.patches, g, t, area_index_of, inv, lo, hi)
    except (ImageError, OSError, ValueError) as e:
        return {"brain_id": w.brain_id, "error": f"build_graph: {e}"}


def _compute(settings: Settings, spark, atlas: Atlas, areas: pa.Table, work: list[BrainWork]):
    """One Spark task per brain, each given its plan (sections and an Arrow table of patches); the RDD of
    brain_graph results, persisted for the summary and the commits."""
    g, t, inv = settings.graph, settings.tiling, np.linalg.inv(atlas.affine)
    lo, hi = atlas.bounds_mm()
    area_index_of = dict(zip(areas["area_id"].to_pylist(), areas["area_index"].to_pylist()))
    return spark.sparkContext.parallelize(work, len(work)).map(
        lambda w: _task(w, g, t, area_index_of, inv, lo, hi)).persist(StorageLevel.MEMORY_AND_DISK)


def _light(r: dict) -> dict:
    return {k: v for k, v in r.items() if k not in _BULKY} | {"nodes": len(r.get("nodes", [])),
                                                               "edges": len(r.get("src", []))}


def _commit(spark, lake: Lake, model: str, ok, hashes: dict[str, str], n_areas: int) -> int:
    """The built brains' (model, brain) partitions of graph_meshes, graph_edges and graph_nodes replaced,
    one commit per table; nodes last, since a brain's graph counts as built once its nodes are committed.
    Returns the graph_nodes version."""
    tag = spark.createDataFrame(sorted(hashes.items()), "brain_id string, graph_hash string")
    edges = spark.createDataFrame(ok.flatMap(lambda r: [(r["brain_id"], s, d) for s, d in zip(r["src"], r["dst"])]),
                                  "brain_id string, src long, dst long")
    edges = edges.join(F.broadcast(tag), "brain_id").withColumn("model_version", F.lit(model))
    nodes = spark.createDataFrame(ok.flatMap(lambda r: r["nodes"]), _node_schema())
    nodes = with_pmap(spark, lake, nodes, ["brain_id", "node_id"], n_areas)
    fe = read_dataframe(spark, lake, "features").filter(F.col("model_version") == model).select(
        "patch_id", F.col("embedding").alias("features"))
    nodes = nodes.join(fe, "patch_id").join(F.broadcast(tag), "brain_id").withColumn("model_version", F.lit(model))
    meshes = spark.createDataFrame(ok.map(lambda r: (
        r["brain_id"], model, len(r["mesh_vertices"]), len(r["mesh_faces"]),
        r["mesh_vertices"].ravel().tolist(), r["mesh_faces"].ravel().tolist(), r["node_vertex"].tolist())),
        "brain_id string, model_version string, n_vertices long, n_faces long, vertices array<double>, "
        "faces array<long>, node_vertex array<long>").join(F.broadcast(tag), "brain_id")
    parts = {"model_version": [model], "brain_id": sorted(hashes)}
    write_dataframe(lake, "graph_meshes", meshes, "replace_partitions", parts)
    write_dataframe(lake, "graph_edges", edges, "replace_partitions", parts)
    return write_dataframe(lake, "graph_nodes", nodes, "replace_partitions", parts)


def run_build_graph(settings: Settings, spark, model_version: str, brains: list[str] | None = None,
                    log=print) -> GraphSummary:
    lake = Lake(settings.paths.lake)
    atlas = Atlas(settings.atlas)
    areas = _areas(lake, atlas)
    plan = _plan(settings, lake, model_version, brains)
    summary = GraphSummary(skipped=plan.current, failed=dict(plan.not_ready))
    log(f"build_graph {model_version}: {len(plan.build)} brain(s) to build, {len(plan.current)} current, "
        f"{len(plan.not_ready)} not ready")
    if not plan.build:
        return summary
    results = _compute(settings, spark, atlas, areas, plan.build)
    for r in results.map(_light).collect():
        if r.get("error"):
            summary.failed[r["brain_id"]] = r["error"]
        else:
            summary.built[r["brain_id"]] = r
    if summary.built:
        hashes = {w.brain_id: w.graph_hash for w in plan.build if w.brain_id in summary.built}
        summary.version = _commit(spark, lake, model_version, results.filter(lambda r: "error" not in r), hashes,
                                  areas.num_rows)
    results.unpersist()
    for b, r in sorted(summary.built.items()):
        log(f"  {b}: {r['vertices']} mesh vertices -> {r['nodes']} nodes, {r['edges'] // 2} edges, "
            f"{r['components']} component(s), {r['seconds']:.1f} s")
    return summary
