"""Stage A of tiling, one Spark task per section: validate, cortex mask, grid centres, reference
position, trilinear pmap corners, label and split. No pixels of the patches are read here."""

from __future__ import annotations

import numpy as np

from cytolake.atlas.corners import corner_columns, trilinear_corners
from cytolake.config import TilingSettings
from cytolake.io.images import ImageError, read_info
from cytolake.io.labels import labels_at
from cytolake.io.warps import warp_points
from cytolake.tiling.geometry import grid_centres, patch_geometry, patch_id
from cytolake.tiling.mask import section_cortex_mask


def section_centres(sec: dict, t: TilingSettings, split: str, inv_affine: np.ndarray,
                    area_index_of: dict[int, int], th: str) -> tuple[list[dict], str | None]:
    """The patch centres of one section as rows, or ([], error message) when the section cannot be tiled."""
    uri = sec["image_uri"]
    try:
        info = read_info(uri)
        sp = sec["spacing_um"]
        g = patch_geometry(t, sp, info.levels)
        mask, scale = section_cortex_mask(uri, sp, info.level_shapes, t.mask_spacing_um, t.mask_threshold, t.max_mask_px)
        xy = grid_centres(mask, scale, t.stride_um / sp, info.width, info.height)
        if not len(xy):
            return [], None
        a = np.asarray(sec["transform"], float).reshape(4, 4)
        # affine into the brain's space, then the brain's warp (if any) to MNI: every centre at once
        xyz = warp_points(sec.get("warp_uri"), sec.get("warp_format"),
                          (np.c_[xy, np.zeros(len(xy)), np.ones(len(xy))] @ a.T)[:, :3])
        corners = corner_columns(*trilinear_corners(xyz, inv_affine))
        labels = labels_at(sec["annotation_uri"], xy[:, 0], xy[:, 1], info.width, area_index_of)
    except (ImageError, OSError, ValueError) as e:
        return [], f"tiling: {e}"
    except MemoryError:
        return [], f"tiling: {uri}: out of memory finding the patch centres"
    block = t.block_px
    rows = []
    for n, (x, y) in enumerate(xy.tolist()):
        rows.append({
            "patch_id": patch_id(sec["brain_id"], sec["section_id"], x, y, g),
            "brain_id": sec["brain_id"], "section_id": sec["section_id"], "x": x, "y": y, "split": split,
            "label": labels[n], "spacing_um": g.spacing_um, "height": g.patch_px, "width": g.patch_px,
            "content_hash": sec["content_hash"], "tiling_hash": th, "ref_xyz": xyz[n].tolist(),
            "image_uri": uri, "level": g.level, "window_px": g.window_px,
            "block": f"{x // block}_{y // block}",
            **{c: col[n] for c, col in corners.items()},
        })
    return rows, None
