"""The build_graph job: plan (`graph/plan.py`: which brains' inputs changed), compute (`graph/compute.py`:
per brain, a Spark task each, the surface graph of one feature model and its nodes' features; its nodes, edges
and mesh leave the task as Arrow IPC streams and become DataFrames batch by batch) and commit (here: nodes
get pmap vectors by the Spark join with `pmaps`; a rebuilt brain's (model, brain) partitions of
`graph_meshes`, `graph_edges` and `graph_nodes` are replaced, nodes last, each table in one commit; all
carry the build's `graph_hash`, so a reader can tell a matching set (`load_graph` refuses a mismatch). A
brain whose inputs and settings are unchanged (same graph_hash) is skipped, so a rerun commits nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pyarrow.compute as pc
from pyspark.sql import functions as F

from cytolake.atlas.join import with_pmap
from cytolake.atlas.pmaps import Atlas
from cytolake.atlas.registered import registered_areas
from cytolake.config import Settings
from cytolake.embed.inference import encoder_hash
from cytolake.embed.job import model_dir
from cytolake.engines.spark import write_dataframe
from cytolake.graph.compute import built_graphs, node_arrow, task_arrow, unpacked
from cytolake.graph.plan import GraphPlan, plan_graphs
from cytolake.lake import Lake


@dataclass
class GraphSummary:
    built: dict[str, dict] = field(default_factory=dict)  # brain -> vertices, nodes, edges, components, seconds,
    # feature_seconds (cutting and embedding the node patches, encoder load included)
    skipped: list[str] = field(default_factory=list)  # already current
    failed: dict[str, str] = field(default_factory=dict)  # brain -> why (an unreadable image)
    version: int | None = None


def _plan(settings: Settings, lake: Lake, model: str, encoder: str, brains: list[str] | None) -> GraphPlan:
    """The lake's current state, read, and handed to the pure plan."""
    of_model = pc.field("model_version") == model
    return plan_graphs(settings, model, encoder, lake.read("sections"),
                       lake.read("graph_nodes", ["brain_id", "graph_hash"], filters=of_model),
                       lake.read("graph_meshes", ["brain_id", "graph_hash"], filters=of_model), brains)


def _commit(spark, lake: Lake, model: str, results, hashes: dict[str, str], n_areas: int) -> int:
    """The built brains' (model, brain) partitions of graph_meshes, graph_edges and graph_nodes replaced,
    one commit per table; nodes last, since a brain's graph counts as built once its nodes are committed.
    Returns the graph_nodes version."""
    tag = spark.createDataFrame(sorted(hashes.items()), "brain_id string, graph_hash string")
    edges = (unpacked(results, "edges", task_arrow("graph_edges")).join(F.broadcast(tag), "brain_id")
             .withColumn("model_version", F.lit(model)))
    nodes = with_pmap(spark, lake, unpacked(results, "nodes", node_arrow()), ["brain_id", "node_id"], n_areas)
    nodes = nodes.join(F.broadcast(tag), "brain_id").withColumn("model_version", F.lit(model))
    meshes = (unpacked(results, "mesh", task_arrow("graph_meshes")).withColumn("model_version", F.lit(model))
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
    results = built_graphs(settings, spark, atlas, areas, plan.build, str(mdir))
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
