"""Mesh -> graph, shared by the per-brain graphs of the lake and by real surfaces (fsaverage5)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cytolake.atlas.corners import corner_columns, trilinear_corners
from cytolake.config import GraphSettings, TilingSettings
from cytolake.graph.mesh import SectionPlane, components, mesh_edges, reconstruct, surface_mesh
from cytolake.graph.nodes import nearest_locations
from cytolake.io.images import read_info
from cytolake.io.labels import labels_at
from cytolake.io.warps import warp_points
from cytolake.tiling.mask import section_cortex_mask


@dataclass(frozen=True)
class Graph:
    """Nodes kept from a mesh (their vertex indices) and the edges among them, renumbered 0..n-1."""

    vertex: np.ndarray
    src: np.ndarray
    dst: np.ndarray

    @property
    def components(self) -> int:
        return components(self.src, self.dst, len(self.vertex))


def graph_from_mesh(faces: np.ndarray, n_vertices: int, keep: np.ndarray | None = None) -> Graph:
    """The graph of a triangle mesh restricted to the vertices in `keep` (default: all): an edge survives
    when both its ends do."""
    src, dst = mesh_edges(faces, n_vertices)
    keep = np.ones(n_vertices, bool) if keep is None else keep
    new = np.full(n_vertices, -1, np.int64)
    new[keep] = np.arange(int(keep.sum()))
    both = keep[src] & keep[dst]
    return Graph(np.flatnonzero(keep), new[src[both]], new[dst[both]])


def canonical(xyz: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """MNI mm scaled to [-1, 1] over the reference volume's bounding box."""
    return (2 * (xyz - lo) / (hi - lo) - 1).astype(np.float32)


def brain_graph(brain_id: str, sections: list[dict], g: GraphSettings, t: TilingSettings,
                area_index_of: dict[int, int], inv_affine: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict:
    """One brain's nodes (rows with trilinear pmap corners, without pmap, patch and features) and edges.

    `sections`: the brain's ok sections (section_id, image_uri, spacing_um, transform, annotation_uri,
    split and optionally warp_uri, warp_format). Every mesh vertex within `g.max_node_distance_mm` of an
    in-mask image location becomes a node there, whatever the tiling grid: its features are taken at that
    location (`graph/features.py`). Returns a dict with nodes, src, dst, vertices, components, seconds, and
    the mesh: mesh_vertices (n, 3, MNI mm), mesh_faces (m, 3), node_vertex (the mesh vertex of each node).

    With a warp the sections are planes of the brain's own space, so the surface is reconstructed there
    and its vertices and the nodes' image locations are then taken to MNI through the warp.
    """
    warp = next(((s["warp_uri"], s.get("warp_format")) for s in sections if s.get("warp_uri")), (None, None))
    t0 = time.perf_counter()
    planes, by_id = [], {}
    for s in sorted(sections, key=lambda s: s["section_id"]):
        info = read_info(s["image_uri"])
        mask, scale = section_cortex_mask(s["image_uri"], s["spacing_um"], info.level_shapes, t.mask_spacing_um,
                                          t.mask_threshold)
        planes.append(SectionPlane(s["section_id"], np.asarray(s["transform"], float).reshape(4, 4), mask, scale))
        by_id[s["section_id"]] = {**s, "width": info.width}
    vol, origin = reconstruct(planes, g.voxel_mm, g.fill_mm)
    verts, faces = surface_mesh(vol, origin, g.voxel_mm, g.smoothing_iterations, g.vertex_spacing_mm)
    loc = nearest_locations(verts, planes, g.max_node_distance_mm, g.node_depth_mm)
    graph = graph_from_mesh(faces, len(verts), loc.plane >= 0)

    v = graph.vertex
    section_ids = np.array([planes[k].section_id for k in loc.plane[v]], np.int64)
    labels = np.full(len(v), None, object)
    for sid in np.unique(section_ids).tolist():
        sel = np.flatnonzero(section_ids == sid)
        s = by_id[sid]
        labels[sel] = labels_at(s["annotation_uri"], loc.x[v[sel]], loc.y[v[sel]], s["width"], area_index_of)
    ref = warp_points(*warp, loc.xyz[v])
    verts = warp_points(*warp, verts)
    corners = corner_columns(*trilinear_corners(ref, inv_affine))
    can = canonical(ref, lo, hi)
    nodes = [{
        "brain_id": brain_id, "node_id": n, "section_id": int(section_ids[n]), "x": int(loc.x[vi]), "y": int(loc.y[vi]),
        "label": labels[n], "split": by_id[int(section_ids[n])]["split"],
        "vertex_xyz": verts[vi].tolist(), "ref_xyz": ref[n].tolist(), "canonical_xyz": can[n].tolist(),
        **{c: col[n] for c, col in corners.items()},
    } for n, vi in enumerate(v.tolist())]
    return {"brain_id": brain_id, "nodes": nodes, "src": graph.src.tolist(), "dst": graph.dst.tolist(),
            "vertices": len(verts), "components": graph.components, "seconds": time.perf_counter() - t0,
            "mesh_vertices": verts, "mesh_faces": faces, "node_vertex": v}


def fsaverage_graph(atlas, hemisphere: str = "left") -> dict:
    """nilearn's fsaverage5 pial mesh of one hemisphere as a graph, with the atlas's pmaps sampled
    (trilinear) at its vertices: vertex_xyz, canonical_xyz, pmap (n, areas), src, dst."""
    from nilearn import datasets, surface

    mesh = surface.load_surf_mesh(datasets.fetch_surf_fsaverage("fsaverage5")[f"pial_{hemisphere}"])
    verts, faces = np.asarray(mesh.coordinates, float), np.asarray(mesh.faces, np.int64)
    graph = graph_from_mesh(faces, len(verts))
    lo, hi = atlas.bounds_mm()
    return {"vertex_xyz": verts, "canonical_xyz": canonical(verts, lo, hi), "pmap": atlas.sample(verts),
            "src": graph.src, "dst": graph.dst, "components": graph.components}
