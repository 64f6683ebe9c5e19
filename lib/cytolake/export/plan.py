"""What export writes, decided on what the lake holds (pure): the brains and their surface meshes, refused
when a mesh is not the one of the brain's current graph."""

from __future__ import annotations

import pyarrow as pa


class ExportError(RuntimeError):
    """Nothing consistent to export (no predictions for the current graphs, a mesh of another build)."""


def meshes_to_export(model: str, graph_hashes: dict[str, str], meshes: pa.Table,
                     brains: list[str] | None = None) -> dict[str, dict]:
    """brain -> its graph_meshes row, for every brain of the model's current graphs (`graph_hashes`: brain ->
    graph_hash) or only `brains`; ExportError naming the brain when its mesh is missing or of another build."""
    by_brain = {r["brain_id"]: r for r in meshes.to_pylist()}
    out = {}
    for b in sorted(graph_hashes):
        if brains and b not in brains:
            continue
        m = by_brain.get(b)
        if m is None or m["graph_hash"] != graph_hashes[b]:
            raise ExportError(f"brain {b}: the lake has no surface mesh of its current graph for model {model}: "
                              f"rerun jobs/build_graph.py --model {model}")
        out[b] = m
    return out
