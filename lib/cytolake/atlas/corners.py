"""Trilinear sampling of the atlas grid: a point's 8 surrounding voxels and their weights.

Points that travel through Spark carry them as the corner columns `ci`, `cj`, `ck` (voxel indices) and `cw`
(weights), one list of 8 per point, which `atlas.join.with_pmap` joins with the sparse `pmaps` table; a
dense volume in memory is sampled with `sample_trilinear`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from cytolake.io.arrow import list_array

CORNER_COLUMNS = ("ci", "cj", "ck", "cw")


def trilinear_corners(xyz_mm: np.ndarray, inv_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For points (n, 3) in mm: the 8 surrounding voxel indices (n, 8, 3) and trilinear weights (n, 8)."""
    v = np.c_[xyz_mm, np.ones(len(xyz_mm))] @ inv_affine.T
    v = v[:, :3]
    base = np.floor(v).astype(np.int64)
    f = v - base
    offs = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    idx = base[:, None, :] + offs[None]
    w = np.prod(np.where(offs[None] == 1, f[:, None, :], 1 - f[:, None, :]), axis=2)
    return idx, w


def corner_columns(idx: np.ndarray, w: np.ndarray) -> dict[str, list[list]]:
    """The corner columns of `trilinear_corners`' output: column name -> one list of 8 per point."""
    return dict(zip(CORNER_COLUMNS, (idx[:, :, 0].tolist(), idx[:, :, 1].tolist(), idx[:, :, 2].tolist(), w.tolist())))


def corner_arrow_fields() -> list[pa.Field]:
    """The corner columns as Arrow fields: voxel indices (int64) and weights (float64), 8 per point."""
    ci, cj, ck, cw = CORNER_COLUMNS
    return [pa.field(ci, pa.list_(pa.int64())), pa.field(cj, pa.list_(pa.int64())),
            pa.field(ck, pa.list_(pa.int64())), pa.field(cw, pa.list_(pa.float64()))]


def corner_arrays(idx: np.ndarray, w: np.ndarray) -> dict[str, pa.ListArray]:
    """The corner columns of `trilinear_corners`' output as Arrow list arrays (no per-point Python lists)."""
    ci, cj, ck, cw = CORNER_COLUMNS
    return {ci: list_array(idx[:, :, 0], pa.int64()), cj: list_array(idx[:, :, 1], pa.int64()),
            ck: list_array(idx[:, :, 2], pa.int64()), cw: list_array(w, pa.float64())}


def sample_trilinear(volume: np.ndarray, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of `volume` (X, Y, Z, ...) at the points of `trilinear_corners`; corners
    outside the volume count as 0. Returns (n, ...)."""
    shape = np.array(volume.shape[:3])
    inside = np.all((idx >= 0) & (idx < shape), axis=2)
    i, j, k = (np.clip(idx[..., a], 0, shape[a] - 1) for a in range(3))
    return np.einsum("nc,nc...->n...", w * inside, volume[i, j, k])
