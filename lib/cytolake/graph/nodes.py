"""Mesh vertices -> nodes: each vertex is tied to an image location inside a section's cortex mask, the
nearest one moved into the cortex's depth; the node's features are then taken from a patch centred there
(`graph/features.py`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt

from cytolake.graph.mesh import SectionPlane


@dataclass(frozen=True)
class Locations:
    """Per vertex: the chosen plane (index into the planes, -1: none within reach), level-0 (x, y) and MNI
    position of the node's location, and the distance (mm) from the vertex to the nearest in-mask pixel,
    which decides the plane and the reach."""

    plane: np.ndarray
    x: np.ndarray
    y: np.ndarray
    xyz: np.ndarray
    distance: np.ndarray


def deepened(r: np.ndarray, c: np.ndarray, inside_mm: np.ndarray, depth_mm: float,
             mm_per_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Mask pixels (r, c) each moved to the pixel within `depth_mm` of it that lies deepest in the mask, counting
    depth only up to `depth_mm` (so the middle of a ribbon thinner than twice that), the nearest of equally
    deep ones. `inside_mm`: each pixel's distance to the nearest pixel outside the mask."""
    reach = int(np.ceil(depth_mm / mm_per_px))
    if reach == 0 or not len(r):
        return r, c
    dr, dc = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    disk = dr**2 + dc**2 <= reach**2
    dr, dc = dr[disk], dc[disk]
    h, w = inside_mm.shape
    rr, cc = np.clip(r[:, None] + dr, 0, h - 1), np.clip(c[:, None] + dc, 0, w - 1)
    score = np.minimum(inside_mm[rr, cc], depth_mm) - 1e-6 * np.hypot(dr, dc)
    k = score.argmax(1)
    rows = np.arange(len(r))
    return rr[rows, k], cc[rows, k]


def nearest_locations(verts: np.ndarray, planes: list[SectionPlane], max_distance_mm: float,
                      depth_mm: float = 0.0) -> Locations:
    """For each vertex, the in-mask pixel (over all sections) closest to it in MNI space, if within reach, moved
    up to `depth_mm` further into the mask (`deepened`). The surface is the outside of the sections' cortex, so the
    nearest in-mask pixel lies on the cortex's pial edge, where a patch centred on it is half outside the
    tissue; moved to mid-depth, the patch spans the laminae as the tiling geometry intends."""
    n = len(verts)
    best = Locations(np.full(n, -1), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros((n, 3)), np.full(n, np.inf))
    for k, p in enumerate(planes):
        if not p.mask.any():
            continue
        px, py, d = p.to_pixels(verts)
        near = np.abs(d) <= max_distance_mm
        if not near.any():
            continue
        h, w = p.mask.shape
        r = np.clip(np.floor(py[near] / p.scale), 0, h - 1).astype(np.int64)
        c = np.clip(np.floor(px[near] / p.scale), 0, w - 1).astype(np.int64)
        _, (ri, ci) = distance_transform_edt(~p.mask, return_indices=True)
        rr, cc = ri[r, c], ci[r, c]

        def level0(rows, cols):  # the centre of the mask pixel, at level 0
            return np.floor((cols + 0.5) * p.scale).astype(np.int64), np.floor((rows + 0.5) * p.scale).astype(np.int64)

        ex, ey = level0(rr, cc)
        dist = np.linalg.norm(p.to_mm(ex.astype(float), ey.astype(float)) - verts[near], axis=1)
        mm_per_px = float(np.linalg.norm(p.affine[:3, 0])) * p.scale
        x, y = level0(*deepened(rr, cc, distance_transform_edt(p.mask) * mm_per_px, depth_mm, mm_per_px))
        xyz = p.to_mm(x.astype(float), y.astype(float))
        idx = np.flatnonzero(near)
        better = dist < best.distance[idx]
        idx = idx[better]
        best.plane[idx], best.x[idx], best.y[idx] = k, x[better], y[better]
        best.xyz[idx], best.distance[idx] = xyz[better], dist[better]
    best.plane[best.distance > max_distance_mm] = -1
    return best
