"""The build_graph stage's compute: per brain, a Spark task each, the surface graph of one feature model
(`graph/build.py`) and each node's features from a patch cut at its own image location and embedded by the
model's encoder in the same task (`graph/features.py`). A brain's nodes, edges and mesh leave the task as Arrow
IPC streams in one `RESULT` row and become DataFrames batch by batch (`unpacked`); their columns are those of
`schemas/graph_*.yaml`, less what the job adds (model_version, graph_hash, and the nodes' pmap, joined in Spark).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from cytolake.atlas.corners import corner_arrow_fields
from cytolake.atlas.pmaps import Atlas
from cytolake.config import Settings
from cytolake.embed.inference import task_encoder
from cytolake.graph.build import AtlasFrame, BrainGraph, brain_graph
from cytolake.graph.features import node_features
from cytolake.graph.plan import BrainWork
from cytolake.io.arrow import list_array
from cytolake.io.images import ImageError
from cytolake.schemas import schema

_ADDED_BY_JOB = {"model_version", "graph_hash"}  # the columns the commit adds to every graph table


def task_arrow(table: str) -> pa.Schema:
    """graph_edges or graph_meshes as the task makes them: the schema's columns less model_version and
    graph_hash, which the commit adds."""
    return pa.schema([f for f in schema(table).arrow() if f.name not in _ADDED_BY_JOB])


def node_arrow() -> pa.Schema:
    """graph_nodes as the task makes them: without pmap (joined in Spark), with the trilinear pmap corners
    the join samples."""
    return pa.schema([f for f in schema("graph_nodes").arrow() if f.name not in _ADDED_BY_JOB | {"pmap"}]
                     + corner_arrow_fields())


# one row per brain: its summary (JSON) or error, and its nodes, edges and mesh as Arrow IPC streams
RESULT = pa.schema([("brain_id", pa.string()), ("error", pa.string()), ("summary", pa.string()),
                    ("nodes", pa.binary()), ("edges", pa.binary()), ("mesh", pa.binary())])
_FROM_PATCHES = ("patch_id", "features")  # the node columns its patch gives, the rest brain_graph's


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def brain_nodes(graph: BrainGraph, w: BrainWork, settings: Settings, encoder: tuple) -> pa.Table:
    """The brain's node rows (`node_arrow`): brain_graph's, with each node's patch id and features from
    the patch cut at its location (`encoder`: the task's (model, device))."""
    arrow = node_arrow()
    nodes = pa.Table.from_pylist(graph.nodes, schema=pa.schema([f for f in arrow if f.name not in _FROM_PATCHES]))
    nf = node_features(w.brain_id, w.sections, nodes["section_id"].to_numpy(), nodes["x"].to_numpy(),
                       nodes["y"].to_numpy(), settings.tiling, *encoder, settings.embed.batch_size)
    features = list_array(nf.features, pa.float32()) if nodes.num_rows else pa.array([], pa.list_(pa.float32()))
    nodes = nodes.append_column("patch_id", pa.array(nf.patch_id, pa.string())).append_column("features", features)
    return nodes.select(arrow.names).cast(arrow)


def brain_result(w: BrainWork, settings: Settings, encoder: Callable[[], tuple], frame: AtlasFrame) -> dict:
    """One brain's graph as a `RESULT` row, a failure of its inputs as its error."""
    try:
        graph = brain_graph(w.brain_id, w.sections, settings.graph, settings.tiling, frame)
        t0 = time.perf_counter()
        nodes = brain_nodes(graph, w, settings, encoder())
    except (ImageError, OSError, ValueError) as e:
        return {"brain_id": w.brain_id, "error": f"build_graph: {e}"}
    summary = {"brain_id": graph.brain_id, "vertices": graph.vertices, "components": graph.components,
               "seconds": graph.seconds, "nodes": len(graph.nodes), "edges": len(graph.src),
               "feature_seconds": time.perf_counter() - t0}
    edges = pa.table([pa.array([w.brain_id] * len(graph.src)), pa.array(graph.src, pa.int64()),
                      pa.array(graph.dst, pa.int64())], schema=task_arrow("graph_edges"))
    v, f = graph.mesh_vertices, graph.mesh_faces
    mesh = pa.table([[w.brain_id], [len(v)], [len(f)], [v.ravel()], [f.ravel()], [graph.node_vertex]],
                    schema=task_arrow("graph_meshes"))
    return {"brain_id": w.brain_id, "summary": json.dumps(summary), "nodes": _ipc(nodes), "edges": _ipc(edges),
            "mesh": _ipc(mesh)}


def built_graphs(settings: Settings, spark, atlas: Atlas, areas: list[dict], work: list[BrainWork], mdir: str):
    """One Spark task per brain, given its plan (its sections with their splits); the encoder of `mdir`
    loaded once per task, on the embed job's device and threads; a persisted DataFrame of `RESULT` rows, one
    per brain, for the summary and the commits."""
    embed = settings.embed
    lo, hi = atlas.bounds_mm()
    frame = AtlasFrame({a["area_id"]: a["area_index"] for a in areas}, np.linalg.inv(atlas.affine), lo, hi)

    def build(batches):
        loaded = []

        def encoder():  # loaded on the first brain's nodes, once per task
            if not loaded:
                loaded.append(task_encoder(mdir, embed.threads_per_task, embed.device))
            return loaded[0]

        for batch in batches:
            rows = [brain_result(BrainWork(r["brain_id"], r["graph_hash"], json.loads(r["sections"])), settings,
                                 encoder, frame) for r in batch.to_pylist()]
            yield pa.RecordBatch.from_pylist(rows, schema=RESULT)

    rows = pa.table({"brain_id": [w.brain_id for w in work], "graph_hash": [w.graph_hash for w in work],
                     "sections": [json.dumps(w.sections) for w in work]})
    return spark.createDataFrame(rows).repartition(len(work)).mapInArrow(build, from_arrow_schema(RESULT)).persist(
        StorageLevel.MEMORY_AND_DISK)


def unpacked(results, column: str, arrow: pa.Schema):
    """The built brains' `column` tables (of `built_graphs`) as one DataFrame, Arrow batch by batch."""
    def unpack(batches):
        for batch in batches:
            for blob in batch.column(0).to_pylist():
                yield from pa.ipc.open_stream(blob).read_all().cast(arrow).to_batches()

    return results.filter(F.col("error").isNull()).select(column).mapInArrow(unpack, from_arrow_schema(arrow))
