"""Mesh vertices -> nodes: each vertex is tied to the nearest image location inside a section's cortex
mask; the node's features are then taken from a patch centred there (`graph/features.py`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt

from cytolake.graph.mesh import SectionPlane


@dataclass(frozen=True)
class Locations:
    """Per vertex: the chosen plane (index into the planes, -1: none within reach), level-0 (x, y), MNI
    position of that pixel and its distance to the vertex (mm)."""

    plane: np.ndarray
    x: np.ndarray
    y: np.ndarray
    xyz: np.ndarray
    distance: np.ndarray


def nearest_locations(verts: np.ndarray, planes: list[SectionPlane], max_distance_mm: float) -> Locations:
    """For each vertex, the in-mask pixel (over all sections) closest to it in MNI space, if within reach."""
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
        x = np.floor((cc + 0.5) * p.scale).astype(np.int64)  # the centre of the mask pixel, at level 0
        y = np.floor((rr + 0.5) * p.scale).astype(np.int64)
        xyz = p.to_mm(x.astype(float), y.astype(float))
        dist = np.linalg.norm(xyz - verts[near], axis=1)
        idx = np.flatnonzero(near)
        better = dist < best.distance[idx]
        idx = idx[better]
        best.plane[idx], best.x[idx], best.y[idx] = k, x[better], y[better]
        best.xyz[idx], best.distance[idx] = xyz[better], dist[better]
    best.plane[best.distance > max_distance_mm] = -1
    return best
