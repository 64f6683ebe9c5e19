"""Which brains' graphs build_graph builds: a pure function of what the lake holds (no Spark, no I/O).

A brain is built when its graph_hash (a fingerprint of its sections, its patch and feature data files and
the settings) has no committed nodes *and* mesh for the model; a brain with patches that lack current
features of the model is not ready; every other brain is current and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from cytolake.config import Settings
from cytolake.lake.fingerprint import fingerprint

PATCH_KEYS = ["patch_id", "content_hash", "tiling_hash"]
SECTION_KEYS = ["section_id", "image_uri", "spacing_um", "transform", "annotation_uri", "content_hash", "warp_uri",
                "warp_format"]


@dataclass(frozen=True)
class BrainWork:
    brain_id: str
    graph_hash: str
    sections: list[dict]  # the brain's ok sections, SECTION_KEYS only
    patches: pa.Table  # patch_id, section_id, x, y, split


@dataclass
class GraphPlan:
    build: list[BrainWork] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    not_ready: dict[str, str] = field(default_factory=dict)  # brain -> why


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


def _pairs(t: pa.Table) -> set[tuple[str, str]]:
    return set(zip(t["brain_id"].to_pylist(), t["graph_hash"].to_pylist()))


def plan_graphs(settings: Settings, model: str, patches: pa.Table, features: pa.Table, sections: pa.Table,
                patch_files: list[str], feature_files: list[str], nodes: pa.Table, meshes: pa.Table,
                brains: list[str] | None = None) -> GraphPlan:
    """`patches`: brain_id, section_id, x, y, split and PATCH_KEYS; `features`: the model's PATCH_KEYS;
    `sections`: the sections table; `patch_files`/`feature_files`: the data files of `patches` and of
    `features` (paths relative to the table); `nodes`/`meshes`: brain_id, graph_hash of the model's
    committed graph_nodes and graph_meshes (a graph counts as current only with its mesh)."""
    plan = GraphPlan()
    current = _pairs(nodes) & _pairs(meshes)
    ok = [s for s in sections.to_pylist() if s["status"] == "ok"]
    for b in sorted(set(patches["brain_id"].to_pylist())):
        if brains and b not in brains:
            continue
        bsecs = [s for s in ok if s["brain_id"] == b]
        bp = patches.filter(pc.equal(patches["brain_id"], b))
        missing = bp.select(PATCH_KEYS).join(features.select(PATCH_KEYS), PATCH_KEYS, join_type="left anti").num_rows
        if missing:
            plan.not_ready[b] = (f"{missing} of {bp.num_rows} patches have no current features for model {model}: "
                                 f"run jobs/embed.py --model {model}")
            continue
        h = graph_hash(settings, model, b, bsecs, [p for p in patch_files if p.startswith(f"brain_id={b}/")],
                       [p for p in feature_files if p.startswith(f"model_version={model}/brain_id={b}/")])
        if (b, h) in current:
            plan.current.append(b)
            continue
        plan.build.append(BrainWork(b, h, [{k: s.get(k) for k in SECTION_KEYS} for s in bsecs],
                                    bp.select(["patch_id", "section_id", "x", "y", "split"])))
    return plan
