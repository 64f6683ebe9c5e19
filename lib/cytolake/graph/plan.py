"""Which brains' graphs build_graph builds: a pure function of what the lake holds (no Spark, no I/O).

A brain with ok sections is built when its graph_hash (a fingerprint of its sections, the encoder's weights
and the settings) has no committed nodes *and* mesh for the model; every other brain is current and skipped.
The grid patches and their `features` are not inputs: each node's patch is cut from the section image at the
node and embedded by the build itself, so the graph depends on the images, the tiling geometry (patch size,
spacing, mask) and the encoder's weights, which the hash names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from cytolake.config import Settings
from cytolake.lake.fingerprint import fingerprint
from cytolake.tiling.geometry import assign_splits, tiling_hash

SECTION_KEYS = ["section_id", "image_uri", "spacing_um", "transform", "annotation_uri", "content_hash", "warp_uri",
                "warp_format"]


@dataclass(frozen=True)
class BrainWork:
    brain_id: str
    graph_hash: str
    sections: list[dict]  # the brain's ok sections, SECTION_KEYS and `split` only


@dataclass
class GraphPlan:
    build: list[BrainWork] = field(default_factory=list)
    current: list[str] = field(default_factory=list)


def graph_hash(settings: Settings, model: str, encoder: str, brain: str, sections: list[dict]) -> str:
    """Fingerprint of everything a brain's graph is built from: the graph settings, the tiling geometry the
    node patches are cut with and the cortex mask (`tiling_hash`), the model and its encoder's weights
    (`encoder`: `embed/inference.py: encoder_hash`), and each section's id, content hash, transform, warp
    and split."""
    key = {"graph": settings.graph.model_dump(mode="json"), "tiling": tiling_hash(settings.tiling),
           "model": model, "encoder": encoder, "brain": brain,
           "sections": sorted([s["section_id"], s["content_hash"], s["transform"], s["split"]]
                              + ([s["warp_hash"]] if s.get("warp_hash") else []) for s in sections)}
    return fingerprint(key)


def _pairs(t: pa.Table) -> set[tuple[str, str]]:
    return set(zip(t["brain_id"].to_pylist(), t["graph_hash"].to_pylist()))


def plan_graphs(settings: Settings, model: str, encoder: str, sections: pa.Table, nodes: pa.Table,
                meshes: pa.Table, brains: list[str] | None = None) -> GraphPlan:
    """`encoder`: the hash of the model's encoder weights; `sections`: the sections table; `nodes`/`meshes`:
    brain_id, graph_hash of the model's committed graph_nodes and graph_meshes (a graph counts as current
    only with its mesh). A section's split is the one tiling gives it (`tiling/geometry.py: assign_splits`,
    the rule `plan_tile` applies), so a node belongs to the split its section's training patches have."""
    plan = GraphPlan()
    current = _pairs(nodes) & _pairs(meshes)
    ok = [s for s in sections.to_pylist() if s["status"] == "ok"]
    splits = assign_splits([(s["brain_id"], s["section_id"], bool(s["annotation_uri"])) for s in ok], settings.tiling)
    for b in sorted({s["brain_id"] for s in ok}):
        if brains and b not in brains:
            continue
        bsecs = [{**s, "split": splits[(b, s["section_id"])]} for s in ok if s["brain_id"] == b]
        h = graph_hash(settings, model, encoder, b, bsecs)
        if (b, h) in current:
            plan.current.append(b)
            continue
        plan.build.append(BrainWork(b, h, [{k: s.get(k) for k in [*SECTION_KEYS, "split"]} for s in bsecs]))
    return plan
