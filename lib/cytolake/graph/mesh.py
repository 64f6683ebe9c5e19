"""An approximate 3D cortex from a brain's sections, and a surface mesh through it.

Each section's cortex mask is closed and filled into a solid and turned into an in-plane signed
distance (mm, negative inside). Between two neighbouring section planes the signed distance is
interpolated linearly (shape-based interpolation), so a voxel's value comes from its projections
onto the two planes that bracket it; beyond the outer sections is outside. Marching cubes
(scikit-image) gives the surface, Taubin smoothing (trimesh) removes the voxel staircase without
shrinking it, and quadric decimation (fast-simplification) brings it to the configured node density.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_closing, binary_fill_holes, distance_transform_edt, map_coordinates


@dataclass(frozen=True)
class SectionPlane:
    """A section's cortex mask placed in MNI space by its level-0 pixel -> mm affine."""

    section_id: int
    affine: np.ndarray  # 4x4: (col, row, 0, 1) level-0 pixels -> MNI mm
    mask: np.ndarray  # bool, at the mask level
    scale: float  # level-0 pixels per mask pixel

    @property
    def pixel_mm(self) -> float:
        """Side of one mask pixel in mm (from the affine, so any spacing the transform carries is honoured)."""
        return float(np.linalg.norm(self.affine[:3, 0])) * self.scale

    @property
    def normal(self) -> np.ndarray:
        n = np.cross(self.affine[:3, 0], self.affine[:3, 1])
        return n / np.linalg.norm(n)

    def to_pixels(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Level-0 (x, y) of points' orthogonal projections onto the plane, and their signed distances (mm)."""
        a2, o = self.affine[:3, :2], self.affine[:3, 3]
        xy = (xyz - o) @ np.linalg.pinv(a2).T
        return xy[:, 0], xy[:, 1], (xyz - o) @ self.normal

    def to_mm(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.c_[x, y, np.zeros(len(x)), np.ones(len(x))] @ self.affine[:3].T


def solid(mask: np.ndarray, fill_px: int) -> np.ndarray:
    """The cortex ribbon closed over `fill_px` pixels and hole-filled: the tissue the ribbon surrounds."""
    if fill_px > 0:
        pad = fill_px + 1
        y, x = np.ogrid[-fill_px:fill_px + 1, -fill_px:fill_px + 1]
        mask = binary_closing(np.pad(mask, pad), structure=x * x + y * y <= fill_px * fill_px)[pad:-pad, pad:-pad]
    return binary_fill_holes(mask)


def signed_distance(inside: np.ndarray, pixel_mm: float) -> np.ndarray:
    """In-plane signed distance in mm: negative inside, positive outside."""
    if not inside.any():
        return np.full(inside.shape, 1e3, np.float32)
    return ((distance_transform_edt(~inside) - distance_transform_edt(inside)) * pixel_mm).astype(np.float32)


def reconstruct(planes: list[SectionPlane], voxel_mm: float, fill_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(signed-distance volume on an MNI-aligned grid, the grid's origin in mm). Needs two or more sections."""
    if len(planes) < 2:
        raise ValueError(f"a 3D reconstruction needs at least two sections, got {len(planes)}")
    normal = np.mean([p.normal * np.sign(p.normal @ planes[0].normal) for p in planes], axis=0)
    planes = sorted(planes, key=lambda p: float(p.affine[:3, 3] @ normal))
    sdfs, lo, hi = [], np.full(3, np.inf), np.full(3, -np.inf)
    for p in planes:
        inside = solid(p.mask, int(round(fill_mm / p.pixel_mm)))
        sdfs.append(signed_distance(inside, p.pixel_mm))
        if inside.any():
            rows, cols = np.nonzero(inside)
            corners = p.to_mm(np.array([cols.min(), cols.max() + 1] * 2, float) * p.scale,
                              np.array([rows.min()] * 2 + [rows.max() + 1] * 2, float) * p.scale)
            lo, hi = np.minimum(lo, corners.min(0)), np.maximum(hi, corners.max(0))
    if not np.isfinite(lo).all():
        raise ValueError("no cortex in any section: nothing to reconstruct")
    origin = np.floor(lo / voxel_mm) * voxel_mm - 2 * voxel_mm
    shape = tuple(int(v) for v in np.ceil((hi - origin) / voxel_mm) + 3)
    grid = np.stack(np.meshgrid(*[origin[i] + voxel_mm * np.arange(shape[i]) for i in range(3)], indexing="ij"), -1)
    xyz = grid.reshape(-1, 3)
    vol = np.full(len(xyz), voxel_mm, np.float32)  # outside, unless bracketed by two sections
    for a, b, sa, sb in zip(planes, planes[1:], sdfs, sdfs[1:]):
        xa, ya, da = a.to_pixels(xyz)
        xb, yb, db = b.to_pixels(xyz)
        da, db = da * np.sign(a.normal @ normal), db * np.sign(b.normal @ normal)
        sel = (da >= 0) & (db <= 0) & (da - db > 0)
        if not sel.any():
            continue
        va = map_coordinates(sa, [ya[sel] / a.scale - 0.5, xa[sel] / a.scale - 0.5], order=1, mode="nearest")
        vb = map_coordinates(sb, [yb[sel] / b.scale - 0.5, xb[sel] / b.scale - 0.5], order=1, mode="nearest")
        w = da[sel] / (da[sel] - db[sel])
        vol[sel] = (1 - w) * va + w * vb
    vol = vol.reshape(shape)
    vol[[0, -1]] = vol[:, [0, -1]] = vol[:, :, [0, -1]] = voxel_mm  # a closed surface at the grid's border
    return vol, origin


def surface_mesh(vol: np.ndarray, origin: np.ndarray, voxel_mm: float, smoothing_iterations: int,
                 vertex_spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(vertices in MNI mm (n, 3), triangles (m, 3)) of the zero level set: smoothed, then decimated so that
    vertices lie about `vertex_spacing_mm` apart."""
    import fast_simplification
    import trimesh
    from skimage.measure import marching_cubes

    if vol.min() >= 0:
        raise ValueError("the reconstruction has no inside: no surface")
    verts, faces, _, _ = marching_cubes(vol, level=0.0, spacing=(voxel_mm,) * 3, allow_degenerate=False)
    mesh = trimesh.Trimesh(verts + origin, faces, process=True)
    if smoothing_iterations:
        trimesh.smoothing.filter_taubin(mesh, iterations=smoothing_iterations)
    # a regular triangulation with edge s has about area / (s^2 sqrt(3) / 2) vertices and twice as many faces
    target_faces = 2 * mesh.area / (vertex_spacing_mm**2 * np.sqrt(3) / 2)
    if target_faces < len(mesh.faces):
        v, f = fast_simplification.simplify(mesh.vertices, mesh.faces, target_reduction=1 - target_faces / len(mesh.faces))
        mesh = trimesh.Trimesh(v, f, process=True)
    mesh.remove_unreferenced_vertices()
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def mesh_edges(faces: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) of every mesh edge in both directions, each once, no self loops, sorted."""
    pairs = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    both = np.unique(np.concatenate([pairs, pairs[:, ::-1]]), axis=0)
    if len(both) and (both.min() < 0 or both.max() >= n_vertices):
        raise ValueError("faces refer to vertices that do not exist")
    return both[:, 0], both[:, 1]


def components(src: np.ndarray, dst: np.ndarray, n: int) -> int:
    """Number of connected components of the graph (isolated nodes count)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    return int(connected_components(coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n)), directed=False)[0])
