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


@dataclass(frozen=True)
class AtlasFrame:
    """Where a brain's nodes land in the reference: the area index of each annotation label id, the inverse of
    the pmaps' affine (MNI mm -> pmap voxels, for the trilinear corners) and the reference volume's bounds
    (`canonical`)."""

    area_index_of: dict[int, int]
    inv_affine: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


@dataclass(frozen=True)
class BrainGraph:
    """One brain's graph: node rows (with trilinear pmap corners, without pmap, patch and features), directed
    edges among them, the mesh it was built from (vertices in MNI mm, faces, and each node's mesh vertex), its
    connected components and the seconds it took."""

    brain_id: str
    nodes: list[dict]
    src: np.ndarray
    dst: np.ndarray
    mesh_vertices: np.ndarray  # (n, 3)
    mesh_faces: np.ndarray  # (m, 3)
    node_vertex: np.ndarray
    components: int
    seconds: float

    @property
    def vertices(self) -> int:
        return len(self.mesh_vertices)


def section_planes(sections: list[dict], tiling: TilingSettings) -> tuple[list[SectionPlane], dict[int, dict]]:
    """(each section's plane with its cortex mask, in section_id order; each section by id with its image
    width)."""
    planes, by_id = [], {}
    for s in sorted(sections, key=lambda s: s["section_id"]):
        info = read_info(s["image_uri"])
        mask, scale = section_cortex_mask(s["image_uri"], s["spacing_um"], info.level_shapes, tiling.mask_spacing_um,
                                          tiling.mask_threshold)
        planes.append(SectionPlane(s["section_id"], np.asarray(s["transform"], float).reshape(4, 4), mask, scale))
        by_id[s["section_id"]] = {**s, "width": info.width}
    return planes, by_id


def node_labels(section_ids: np.ndarray, x: np.ndarray, y: np.ndarray, by_id: dict[int, dict],
                area_index_of: dict[int, int]) -> np.ndarray:
    """Each node's area label (None where unannotated), read from its section's annotation at (x, y)."""
    labels = np.full(len(section_ids), None, object)
    for sid in np.unique(section_ids).tolist():
        sel = np.flatnonzero(section_ids == sid)
        s = by_id[sid]
        labels[sel] = labels_at(s["annotation_uri"], x[sel], y[sel], s["width"], area_index_of)
    return labels


def brain_graph(brain_id: str, sections: list[dict], graph_settings: GraphSettings, tiling: TilingSettings,
                frame: AtlasFrame) -> BrainGraph:
    """One brain's graph.

    `sections`: the brain's ok sections (section_id, image_uri, spacing_um, transform, annotation_uri,
    split and optionally warp_uri, warp_format). Every mesh vertex within `graph_settings.max_node_distance_mm`
    of an in-mask image location becomes a node there, whatever the tiling grid: its features are taken at that
    location (`graph/features.py`).

    With a warp the sections are planes of the brain's own space, so the surface is reconstructed there
    and its vertices and the nodes' image locations are then taken to MNI through the warp.
    """
    warp = next(((s["warp_uri"], s.get("warp_format")) for s in sections if s.get("warp_uri")), (None, None))
    t0 = time.perf_counter()
    planes, by_id = section_planes(sections, tiling)
    vol, origin = reconstruct(planes, graph_settings.voxel_mm, graph_settings.fill_mm)
    verts, faces = surface_mesh(vol, origin, graph_settings.voxel_mm, graph_settings.smoothing_iterations,
                                graph_settings.vertex_spacing_mm)
    loc = nearest_locations(verts, planes, graph_settings.max_node_distance_mm, graph_settings.node_depth_mm)
    graph = graph_from_mesh(faces, len(verts), loc.plane >= 0)

    v = graph.vertex
    section_ids = np.array([planes[k].section_id for k in loc.plane[v]], np.int64)
    labels = node_labels(section_ids, loc.x[v], loc.y[v], by_id, frame.area_index_of)
    ref = warp_points(*warp, loc.xyz[v])
    verts = warp_points(*warp, verts)
    nodes = node_rows(brain_id, section_ids, loc.x[v], loc.y[v], labels, by_id, verts[v], ref, frame)
    return BrainGraph(brain_id, nodes, graph.src, graph.dst, verts, faces, v, graph.components,
                      time.perf_counter() - t0)


def node_rows(brain_id: str, section_ids: np.ndarray, x: np.ndarray, y: np.ndarray, labels: np.ndarray,
              by_id: dict[int, dict], vertex_xyz: np.ndarray, ref: np.ndarray, frame: AtlasFrame) -> list[dict]:
    """The nodes' rows, node_id in order: image location, label, split, mesh vertex, reference (MNI mm) and
    canonical positions, and the trilinear pmap corners at the reference position."""
    corners = corner_columns(*trilinear_corners(ref, frame.inv_affine))
    can = canonical(ref, frame.lo, frame.hi)
    return [{
        "brain_id": brain_id, "node_id": n, "section_id": int(section_ids[n]), "x": int(x[n]), "y": int(y[n]),
        "label": labels[n], "split": by_id[int(section_ids[n])]["split"],
        "vertex_xyz": vertex_xyz[n].tolist(), "ref_xyz": ref[n].tolist(), "canonical_xyz": can[n].tolist(),
        **{c: col[n] for c, col in corners.items()},
    } for n in range(len(section_ids))]


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
