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
from pyspark.sql.types import StructType

from cytolake.atlas.join import corner_fields, with_pmap
from cytolake.atlas.pmaps import Atlas
from cytolake.atlas.registered import registered_areas
from cytolake.config import Settings
from cytolake.graph.build import brain_graph
from cytolake.io.images import ImageError
from cytolake.lake import Lake
from cytolake.lake.fingerprint import fingerprint
from cytolake.lake.spark import read_dataframe, write_dataframe
from cytolake.schemas import schema

_PATCH_COLS = ["brain_id", "patch_id", "section_id", "x", "y", "split", "content_hash", "tiling_hash"]
_KEYS = ["patch_id", "content_hash", "tiling_hash"]


@dataclass
class GraphSummary:
    built: dict[str, dict] = field(default_factory=dict)  # brain -> vertices, nodes, edges, components, seconds
    skipped: list[str] = field(default_factory=list)  # already current
    failed: dict[str, str] = field(default_factory=dict)
    version: int | None = None


def _node_schema() -> StructType:
    drop = {"model_version", "graph_hash", "pmap", "features"}
    return StructType([f for f in schema("graph_nodes").spark().fields if f.name not in drop]
                      + corner_fields())


def graph_hash(settings: Settings, model: str, brain: str, sections: list[dict], patch_files: list[str],
               feature_files: list[str]) -> str:
    """Fingerprint of everything a brain's graph is built from; Delta data files are immutable, so their
    names stand for their content."""
    t = settings.tiling
    key = {"graph": settings.graph.model_dump(mode="json"), "mask": [t.mask_spacing_um, t.mask_threshold],
           "model": model, "brain": brain, "patches": patch_files, "features": feature_files,
           "sections": sorted([s["section_id"], s["content_hash"], s["transform"]]
                              + ([s["warp_hash"]] if s.get("warp_hash") else []) for s in sections)}
    return fingerprint(key)


def _task(args: tuple, g, t, area_index_of, inv, lo, hi) -> dict:
    brain, secs, patches = args
    try:
        return brain_graph(brain, secs, pa.table(patches), g, t, area_index_of, inv, lo, hi)
    except (ImageError, OSError, ValueError) as e:
        return {"brain_id": brain, "error": f"build_graph: {e}"}


def run_build_graph(settings: Settings, spark, model_version: str, brains: list[str] | None = None,
                    log=print) -> GraphSummary:
    lake = Lake(settings.paths.lake)
    summary = GraphSummary()
    atlas = Atlas(settings.atlas)
    areas = registered_areas(lake, atlas)
    area_index_of = {a["area_id"]: a["area_index"] for a in areas}

    patches = lake.read("patches", _PATCH_COLS)
    feats = lake.read("features", ["brain_id", *_KEYS], filters=pc.field("model_version") == model_version)
    secs = [s for s in lake.read("sections").to_pylist() if s["status"] == "ok"]
    by_brain = {b: [s for s in secs if s["brain_id"] == b]
                for b in sorted(set(patches["brain_id"].to_pylist())) if not brains or b in brains}
    old = lake.read("graph_nodes", ["brain_id", "graph_hash"], filters=pc.field("model_version") == model_version)
    current = {(r["brain_id"], r["graph_hash"]) for r in old.group_by(["brain_id", "graph_hash"]).aggregate([]).to_pylist()}
    # a graph is current only with its mesh (lakes built before graph_meshes existed rebuild once)
    meshes = lake.read("graph_meshes", ["brain_id", "graph_hash"], filters=pc.field("model_version") == model_version)
    current &= {(b, h) for b, h in zip(meshes["brain_id"].to_pylist(), meshes["graph_hash"].to_pylist())}
    todo = []
    for b, bsecs in by_brain.items():
        bp = patches.filter(pc.equal(patches["brain_id"], b))
        missing = bp.select(_KEYS).join(feats.select(_KEYS), _KEYS, join_type="left anti").num_rows
        if missing:
            summary.failed[b] = (f"{missing} of {bp.num_rows} patches have no current features for model "
                                 f"{model_version}: run jobs/embed.py --model {model_version}")
            continue
        h = graph_hash(settings, model_version, b, bsecs, lake.file_paths("patches", f"brain_id={b}/"),
                       lake.file_paths("features", f"model_version={model_version}/brain_id={b}/"))
        if (b, h) in current:
            summary.skipped.append(b)
            continue
        todo.append((b, h, bsecs, bp.select(["patch_id", "section_id", "x", "y", "split"]).to_pydict()))
    log(f"build_graph {model_version}: {len(todo)} brain(s) to build, {len(summary.skipped)} current, "
        f"{len(summary.failed)} not ready")
    if not todo:
        return summary

    g, t, inv = settings.graph, settings.tiling, np.linalg.inv(atlas.affine)
    lo, hi = atlas.bounds_mm()
    hashes = {b: h for b, h, _, _ in todo}
    keep = ["section_id", "image_uri", "spacing_um", "transform", "annotation_uri", "content_hash", "warp_uri",
            "warp_format"]
    work = [(b, [{k: s.get(k) for k in keep} for s in bsecs], p) for b, _, bsecs, p in todo]
    results = spark.sparkContext.parallelize(work, len(work)).map(
        lambda a: _task(a, g, t, area_index_of, inv, lo, hi)).persist(StorageLevel.MEMORY_AND_DISK)
    bulky = ("nodes", "src", "dst", "mesh_vertices", "mesh_faces", "node_vertex")
    for r in results.map(lambda r: {k: v for k, v in r.items() if k not in bulky} |
                         {"nodes": len(r.get("nodes", [])), "edges": len(r.get("src", []))}).collect():
        if r.get("error"):
            summary.failed[r["brain_id"]] = r["error"]
        else:
            summary.built[r["brain_id"]] = r
    done = sorted(summary.built)
    if done:
        ok = results.filter(lambda r: "error" not in r)
        tag = spark.createDataFrame([(b, hashes[b]) for b in done], "brain_id string, graph_hash string")
        edges = spark.createDataFrame(ok.flatMap(lambda r: [(r["brain_id"], s, d) for s, d in zip(r["src"], r["dst"])]),
                                      "brain_id string, src long, dst long")
        edges = edges.join(F.broadcast(tag), "brain_id").withColumn("model_version", F.lit(model_version))
        nodes = spark.createDataFrame(ok.flatMap(lambda r: r["nodes"]), _node_schema())
        nodes = with_pmap(spark, lake, nodes, ["brain_id", "node_id"], len(areas))
        fe = read_dataframe(spark, lake, "features").filter(F.col("model_version") == model_version).select(
            "patch_id", F.col("embedding").alias("features"))
        nodes = (nodes.join(fe, "patch_id").join(F.broadcast(tag), "brain_id")
                 .withColumn("model_version", F.lit(model_version)))
        meshes = spark.createDataFrame(ok.map(lambda r: (
            r["brain_id"], model_version, len(r["mesh_vertices"]), len(r["mesh_faces"]),
            r["mesh_vertices"].ravel().tolist(), r["mesh_faces"].ravel().tolist(), r["node_vertex"].tolist())),
            "brain_id string, model_version string, n_vertices long, n_faces long, vertices array<double>, "
            "faces array<long>, node_vertex array<long>").join(F.broadcast(tag), "brain_id")
        parts = {"model_version": [model_version], "brain_id": done}
        # meshes and edges first, nodes last: a brain's graph counts as built once its nodes are committed
        write_dataframe(lake, "graph_meshes", meshes, "replace_partitions", parts)
        write_dataframe(lake, "graph_edges", edges, "replace_partitions", parts)
        summary.version = write_dataframe(lake, "graph_nodes", nodes, "replace_partitions", parts)
    results.unpersist()
    for b in done:
        r = summary.built[b]
        log(f"  {b}: {r['vertices']} mesh vertices -> {r['nodes']} nodes, {r['edges'] // 2} edges, "
            f"{r['components']} component(s), {r['seconds']:.1f} s")
    return summary
