"""One brain's maps as files: label volumes on the atlas grid (NIfTI), the surface mesh and per-vertex
labels (GIfTI), and interactive views (HTML): the surface with area names (plotly) and the volume over the
MNI152 template (nilearn's `view_img`)."""

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


def face_labels(faces: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each triangle's label: the one at least two of its vertices carry, else its first vertex's."""
    a, b, c = (values[faces[:, i]] for i in range(3))
    return np.where(b == c, b, a)


def surface_figure(vertices: np.ndarray, faces: np.ndarray, values: np.ndarray, rows, title: str):
    """A plotly figure of the surface, one mesh trace per label present: its colour from the label table, its
    name (`value name`) in the legend and on hover with the MNI position, so every colour can be read."""
    import plotly.graph_objects as go

    names = {v: n for v, n, _ in rows}
    colour = {v: rgb for v, _, rgb in rows}
    per_face = face_labels(faces, values)
    fig = go.Figure()
    for v in np.unique(per_face):
        sel = faces[per_face == v]
        used, local = np.unique(sel, return_inverse=True)
        local = local.reshape(-1, 3)
        name = names.get(int(v), f"label {int(v)}")
        r, g, b = (128, 128, 128) if v == 0 else colour.get(int(v), (0, 0, 0))
        fig.add_trace(go.Mesh3d(
            x=vertices[used, 0], y=vertices[used, 1], z=vertices[used, 2], i=local[:, 0], j=local[:, 1],
            k=local[:, 2], color=f"rgb({r},{g},{b})", opacity=1.0, flatshading=False, showlegend=True,
            name=f"{int(v)} {name}" if v else "0 Unknown (no node near)",
            hovertemplate=f"{name}<br>MNI x %{{x:.1f}} y %{{y:.1f}} z %{{z:.1f}} mm<extra></extra>"))
    fig.update_layout(title=title, legend=dict(title="area (label value, name)", itemsizing="constant"),
                      scene=dict(aspectmode="data", xaxis_title="x (mm)", yaxis_title="y (mm)", zaxis_title="z (mm)"),
                      margin=dict(l=0, r=0, t=40, b=0))
    return fig


def write_surface_view(path: Path, vertices: np.ndarray, faces: np.ndarray, values: np.ndarray, rows,
                       title: str) -> Path:
    """A self-contained HTML page (plotly, the library under nilearn's `view_surf`): the surface coloured by
    label, rotatable in a browser, the area's name on hover and a legend of the areas shown (a click hides
    one)."""
    surface_figure(vertices, faces, values, rows, title).write_html(path, include_plotlyjs=True, full_html=True)
    return path


def write_volume_view(path: Path, volume: Path, rows, title: str) -> Path:
    """A self-contained HTML page (nilearn's `view_img`): the label volume over the MNI152 template in three
    orthogonal slices, coloured by the label table, with the value under the cursor."""
    from matplotlib.colors import ListedColormap
    from nilearn import plotting

    n = max(v for v, _, _ in rows)
    cmap = ListedColormap([np.array(rgb) / 255 for _, _, rgb in sorted(rows)])
    view = plotting.view_img(str(volume), cmap=cmap, vmin=0, vmax=n, symmetric_cmap=False, threshold=0.5,
                             resampling_interpolation="nearest", colorbar=False, title=title, opacity=0.8,
                             black_bg=False)
    view.save_as_html(path)
    return path
