"""One brain's maps as files: label volumes on the atlas grid (NIfTI), the surface mesh and per-vertex
labels (GIfTI), and an interactive surface view (HTML, nilearn's `view_surf`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from cytolake.export.labels import gifti_label_table

MNI_152 = 4  # NIfTI / GIfTI xform code of MNI152 space


def label_volume(points: np.ndarray, values: np.ndarray, affine: np.ndarray, shape: tuple[int, int, int],
                 max_distance_mm: float) -> np.ndarray:
    """The label grid (int16, 0 = none): each voxel whose centre lies within `max_distance_mm` of a point
    takes the value + 1 of the nearest point. Points are surface vertices, so this is the predicted cortex
    near the reconstructed surface and nothing else."""
    vol = np.zeros(shape, np.int16)
    if not len(points):
        return vol
    inv = np.linalg.inv(affine)
    ijk = np.c_[points, np.ones(len(points))] @ inv.T
    reach = max_distance_mm / np.abs(np.diag(affine)[:3]).min() + 1
    lo = np.maximum(np.floor(ijk[:, :3].min(0) - reach), 0).astype(int)
    hi = np.minimum(np.ceil(ijk[:, :3].max(0) + reach) + 1, shape).astype(int)
    if np.any(hi <= lo):
        return vol
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    xyz = np.c_[grid, np.ones(len(grid))] @ affine[:3].T
    dist, nearest = cKDTree(points).query(xyz, distance_upper_bound=max_distance_mm)
    hit = np.isfinite(dist)
    vol[tuple(grid[hit].T)] = values[nearest[hit]] + 1
    return vol


def write_label_volume(path: Path, vol: np.ndarray, affine: np.ndarray) -> Path:
    import nibabel as nib

    img = nib.Nifti1Image(vol, affine)
    img.header.set_intent("label")
    img.set_sform(affine, code=MNI_152)
    img.set_qform(affine, code=MNI_152)
    nib.save(img, path)
    return path


def write_surface(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """A GIfTI surface (`.surf.gii`): vertices in MNI mm, triangles."""
    import nibabel as nib

    coords = nib.gifti.GiftiDataArray(vertices.astype(np.float32), intent="NIFTI_INTENT_POINTSET",
                                      datatype="NIFTI_TYPE_FLOAT32")
    coords.coordsys = nib.gifti.GiftiCoordSystem(dataspace=MNI_152, xformspace=MNI_152, xform=np.eye(4))
    tri = nib.gifti.GiftiDataArray(faces.astype(np.int32), intent="NIFTI_INTENT_TRIANGLE", datatype="NIFTI_TYPE_INT32")
    nib.save(nib.gifti.GiftiImage(darrays=[coords, tri]), path)
    return path


def write_surface_labels(path: Path, values: np.ndarray, rows, name: str) -> Path:
    """A GIfTI label file (`.label.gii`): one int32 value per vertex (0 = Unknown) and its label table."""
    import nibabel as nib

    arr = nib.gifti.GiftiDataArray(values.astype(np.int32), intent="NIFTI_INTENT_LABEL", datatype="NIFTI_TYPE_INT32",
                                   meta=nib.gifti.GiftiMetaData({"Name": name}))
    nib.save(nib.gifti.GiftiImage(labeltable=gifti_label_table(rows), darrays=[arr]), path)
    return path


def write_surface_view(path: Path, vertices: np.ndarray, faces: np.ndarray, values: np.ndarray, rows,
                       title: str) -> Path:
    """A self-contained HTML page: the surface coloured by label value, rotatable in a browser."""
    from matplotlib.colors import ListedColormap
    from nilearn import plotting

    n = max(v for v, _, _ in rows)
    cmap = ListedColormap([np.array(rgb) / 255 for _, _, rgb in sorted(rows)])
    view = plotting.view_surf((vertices, faces), values.astype(float), cmap=cmap, vmin=0, vmax=n,
                              symmetric_cmap=False, colorbar=False, title=title, title_fontsize=14)
    view.save_as_html(path)
    return path
