"""The build_graph job: plan (`graph/plan.py`: which brains' inputs changed), compute (per brain, a Spark
task each, the surface graph of one feature model, and each node's features from a patch cut at its own
image location and embedded by the model's encoder in the same task, `graph/features.py`; its nodes, edges
and mesh leave the task as Arrow IPC streams and become DataFrames batch by batch; nodes get pmap vectors
by the Spark join with `pmaps`) and commit: a rebuilt brain's (model, brain) partitions of
`graph_meshes`, `graph_edges` and `graph_nodes` are replaced, nodes last, each table in one commit; all
carry the build's `graph_hash`, so a reader can tell a matching set (`load_graph` refuses a mismatch). A
brain whose inputs and settings are unchanged (same graph_hash) is skipped, so a rerun commits nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from cytolake.atlas.corners import corner_arrow_fields
from cytolake.atlas.join import with_pmap
from cytolake.atlas.pmaps import Atlas
from cytolake.atlas.registered import registered_areas
from cytolake.config import Settings
from cytolake.embed.inference import encoder_hash, task_encoder
from cytolake.embed.job import model_dir
from cytolake.engines.spark import write_dataframe
from cytolake.graph.build import brain_graph
from cytolake.graph.features import node_features
from cytolake.graph.plan import BrainWork, GraphPlan, plan_graphs
from cytolake.io.arrow import list_array
from cytolake.io.images import ImageError
from cytolake.lake import Lake
from cytolake.schemas import arrow_type, schema

_EDGES = pa.schema([("brain_id", pa.string()), ("src", pa.int64()), ("dst", pa.int64())])
_MESHES = pa.schema([("brain_id", pa.string()), ("n_vertices", pa.int64()), ("n_faces", pa.int64()),
                     ("vertices", arrow_type("list<float64>")), ("faces", arrow_type("list<int64>")),
                     ("node_vertex", arrow_type("list<int64>"))])
# one row per brain: its summary (JSON) or error, and its nodes, edges and mesh as Arrow IPC streams
_RESULT = pa.schema([("brain_id", pa.string()), ("error", pa.string()), ("summary", pa.string()),
                     ("nodes", pa.binary()), ("edges", pa.binary()), ("mesh", pa.binary())])


@dataclass
class GraphSummary:
    built: dict[str, dict] = field(default_factory=dict)  # brain -> vertices, nodes, edges, components, seconds,
    # feature_seconds (cutting and embedding the node patches, encoder load included)
    skipped: list[str] = field(default_factory=list)  # already current
    failed: dict[str, str] = field(default_factory=dict)  # brain -> why (an unreadable image)
    version: int | None = None


_FROM_PATCHES = ("patch_id", "features")  # the node columns its patch gives, the rest brain_graph's


def _node_arrow() -> pa.Schema:
    """graph_nodes as the task makes them: without pmap (joined in Spark), with the trilinear pmap corners
    the join samples."""
    drop = {"model_version", "graph_hash", "pmap"}
    return pa.schema([f for f in schema("graph_nodes").arrow() if f.name not in drop]
                     + corner_arrow_fields())


def _ipc(t: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    return sink.getvalue().to_pybytes()


def _plan(settings: Settings, lake: Lake, model: str, encoder: str, brains: list[str] | None) -> GraphPlan:
    """The lake's current state, read, and handed to the pure plan."""
    of_model = pc.field("model_version") == model
    return plan_graphs(settings, model, encoder, lake.read("sections"),
                       lake.read("graph_nodes", ["brain_id", "graph_hash"], filters=of_model),
                       lake.read("graph_meshes", ["brain_id", "graph_hash"], filters=of_model), brains)


def _nodes(r: dict, w: BrainWork, settings: Settings, encoder: tuple) -> pa.Table:
    """The brain's node rows (`_node_arrow`): brain_graph's, with each node's patch id and features from
    the patch cut at its location (`encoder`: the task's (model, device))."""
    arrow = _node_arrow()
    nodes = pa.Table.from_pylist(r["nodes"], schema=pa.schema([f for f in arrow if f.name not in _FROM_PATCHES]))
    nf = node_features(w.brain_id, w.sections, nodes["section_id"].to_numpy(), nodes["x"].to_numpy(),
                       nodes["y"].to_numpy(), settings.tiling, *encoder, settings.embed.batch_size)
    features = list_array(nf.features, pa.float32()) if nodes.num_rows else pa.array([], pa.list_(pa.float32()))
    nodes = nodes.append_column("patch_id", pa.array(nf.patch_id, pa.string())).append_column("features", features)
    return nodes.select(arrow.names).cast(arrow)


def _result(w: BrainWork, settings: Settings, encoder, area_index_of, inv, lo, hi) -> dict:
    """One brain's graph as a _RESULT row, a failure of its inputs as its error."""
    try:
        r = brain_graph(w.brain_id, w.sections, settings.graph, settings.tiling, area_index_of, inv, lo, hi)
        t0 = time.perf_counter()
        nodes = _nodes(r, w, settings, encoder())
    except (ImageError, OSError, ValueError) as e:
        return {"brain_id": w.brain_id, "error": f"build_graph: {e}"}
    summary = {k: r[k] for k in ("brain_id", "vertices", "components", "seconds")} | {
        "nodes": len(r["nodes"]), "edges": len(r["src"]), "feature_seconds": time.perf_counter() - t0}
    edges = pa.table([pa.array([w.brain_id] * len(r["src"])), pa.array(r["src"], pa.int64()),
                      pa.array(r["dst"], pa.int64())], schema=_EDGES)
    v, f = r["mesh_vertices"], r["mesh_faces"]
    mesh = pa.table([[w.brain_id], [len(v)], [len(f)], [v.ravel()], [f.ravel()], [r["node_vertex"]]], schema=_MESHES)
    return {"brain_id": w.brain_id, "summary": json.dumps(summary), "nodes": _ipc(nodes), "edges": _ipc(edges),
            "mesh": _ipc(mesh)}


def _compute(settings: Settings, spark, atlas: Atlas, areas: list[dict], work: list[BrainWork], mdir: str):
    """One Spark task per brain, given its plan (its sections with their splits); the encoder of `mdir`
    loaded once per task, on the embed job's device and threads; a persisted DataFrame of _RESULT rows, one
    per brain, for the summary and the commits."""
    inv, e = np.linalg.inv(atlas.affine), settings.embed
    lo, hi = atlas.bounds_mm()
    area_index_of = {a["area_id"]: a["area_index"] for a in areas}

    def build(batches):
        loaded = []

        def encoder():  # loaded on the first brain's nodes, once per task
            if not loaded:
                loaded.append(task_encoder(mdir, e.threads_per_task, e.device))
            return loaded[0]

        for batch in batches:
            rows = [_result(BrainWork(r["brain_id"], r["graph_hash"], json.loads(r["sections"])), settings, encoder,
                            area_index_of, inv, lo, hi) for r in batch.to_pylist()]
            yield pa.RecordBatch.from_pylist(rows, schema=_RESULT)

    rows = pa.table({"brain_id": [w.brain_id for w in work], "graph_hash": [w.graph_hash for w in work],
                     "sections": [json.dumps(w.sections) for w in work]})
    return spark.createDataFrame(rows).repartition(len(work)).mapInArrow(build, from_arrow_schema(_RESULT)).persist(
        StorageLevel.MEMORY_AND_DISK)


def _unpacked(results, column: str, arrow: pa.Schema):
    """The built brains' `column` tables as one DataFrame, Arrow batch by batch."""
    def unpack(batches):
        for batch in batches:
            for blob in batch.column(0).to_pylist():
                yield from pa.ipc.open_stream(blob).read_all().cast(arrow).to_batches()

    return results.filter(F.col("error").isNull()).select(column).mapInArrow(unpack, from_arrow_schema(arrow))


def _commit(spark, lake: Lake, model: str, results, hashes: dict[str, str], n_areas: int) -> int:
    """The built brains' (model, brain) partitions of graph_meshes, graph_edges and graph_nodes replaced,
    one commit per table; nodes last, since a brain's graph counts as built once its nodes are committed.
    Returns the graph_nodes version."""
    tag = spark.createDataFrame(sorted(hashes.items()), "brain_id string, graph_hash string")
    edges = _unpacked(results, "edges", _EDGES).join(F.broadcast(tag), "brain_id").withColumn("model_version",
                                                                                             F.lit(model))
    nodes = with_pmap(spark, lake, _unpacked(results, "nodes", _node_arrow()), ["brain_id", "node_id"], n_areas)
    nodes = nodes.join(F.broadcast(tag), "brain_id").withColumn("model_version", F.lit(model))
    meshes = (_unpacked(results, "mesh", _MESHES).withColumn("model_version", F.lit(model))
              .join(F.broadcast(tag), "brain_id"))
    parts = {"model_version": [model], "brain_id": sorted(hashes)}
    write_dataframe(lake, "graph_meshes", meshes, "replace_partitions", parts)
    write_dataframe(lake, "graph_edges", edges, "replace_partitions", parts)
    return write_dataframe(lake, "graph_nodes", nodes, "replace_partitions", parts)


def run_build_graph(settings: Settings, spark, model_version: str, brains: list[str] | None = None,
                    log=print) -> GraphSummary:
    mdir = model_dir(settings, model_version)
    lake = Lake(settings.paths.lake)
    atlas = Atlas(settings.atlas)
    areas = registered_areas(lake, atlas)
    plan = _plan(settings, lake, model_version, encoder_hash(mdir), brains)
    summary = GraphSummary(skipped=plan.current)
    log(f"build_graph {model_version}: {len(plan.build)} brain(s) to build, {len(plan.current)} current")
    if not plan.build:
        return summary
    results = _compute(settings, spark, atlas, areas, plan.build, str(mdir))
    for b, error, built in results.select("brain_id", "error", "summary").collect():
        if error:
            summary.failed[b] = error
        else:
            summary.built[b] = json.loads(built)
    if summary.built:
        hashes = {w.brain_id: w.graph_hash for w in plan.build if w.brain_id in summary.built}
        summary.version = _commit(spark, lake, model_version, results, hashes, len(areas))
    results.unpersist()
    for b, r in sorted(summary.built.items()):
        log(f"  {b}: {r['vertices']} mesh vertices -> {r['nodes']} nodes, {r['edges'] // 2} edges, "
            f"{r['components']} component(s), {r['seconds']:.1f} s graph + {r['feature_seconds']:.1f} s node features")
    return summary
