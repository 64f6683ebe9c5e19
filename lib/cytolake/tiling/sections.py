"""Stage A of tiling, one Spark task per section: validate, cortex mask, grid centres, reference
position, trilinear pmap corners, label and split. No pixels of the patches are read here."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from cytolake.atlas.corners import corner_arrays, corner_arrow_fields, trilinear_corners
from cytolake.config import TilingSettings
from cytolake.io.arrow import list_array
from cytolake.io.images import ImageError, read_info
from cytolake.io.labels import labels_at
from cytolake.io.pyramid import halving_levels
from cytolake.io.warps import warp_points
from cytolake.schemas import schema
from cytolake.tiling.geometry import grid_centres, patch_geometry, patch_id
from cytolake.tiling.mask import section_cortex_mask
from cytolake.tiling.patches import window_columns


def centre_schema() -> pa.Schema:
    """Stage A's rows: a patch's columns but its pixels and pmap, plus what stage B and the pmap join need."""
    base = [f.with_nullable(True) for f in schema("patches").arrow() if f.name not in ("pmap", "image")]
    return pa.schema(base + [pa.field("image_uri", pa.string()), pa.field("level", pa.int32()),
                             pa.field("window_px", pa.int32()), pa.field("block", pa.string())]
                     + corner_arrow_fields())


def outcome_schema() -> pa.Schema:
    """Stage A's output: the centre rows, and for a section without any (no cortex, or an error) one row
    with only brain_id, section_id and `error`, so that every section reports back through one DataFrame."""
    return centre_schema().append(pa.field("error", pa.string()))


def _repeat(value, n: int, type_: pa.DataType) -> pa.Array:
    return pa.repeat(pa.scalar(value, type_), n)


def section_centres(sec: dict, tiling: TilingSettings, split: str, inv_affine: np.ndarray,
                    area_index_of: dict[int, int], th: str) -> tuple[pa.Table, str | None]:
    """The patch centres of one section (`centre_schema`), or (no rows, error message) when it cannot be tiled."""
    out = centre_schema()
    uri = sec["image_uri"]
    try:
        info = read_info(uri)
        sp = sec["spacing_um"]
        g = patch_geometry(tiling, sp, halving_levels(info.level_shapes))
        mask, scale = section_cortex_mask(uri, sp, info.level_shapes, tiling.mask_spacing_um, tiling.mask_threshold, tiling.max_mask_px)
        xy = grid_centres(mask, scale, tiling.stride_um / sp, info.width, info.height)
        if not len(xy):
            return out.empty_table(), None
        a = np.asarray(sec["transform"], float).reshape(4, 4)
        # affine into the brain's space, then the brain's warp (if any) to MNI: every centre at once
        xyz = warp_points(sec.get("warp_uri"), sec.get("warp_format"),
                          (np.c_[xy, np.zeros(len(xy)), np.ones(len(xy))] @ a.T)[:, :3])
        idx, w = trilinear_corners(xyz, inv_affine)
        labels = labels_at(sec["annotation_uri"], xy[:, 0], xy[:, 1], info.width, area_index_of)
    except (ImageError, OSError, ValueError) as e:
        return out.empty_table(), f"tiling: {e}"
    except MemoryError:
        return out.empty_table(), f"tiling: {uri}: out of memory finding the patch centres"
    n = len(xy)
    b, sid = sec["brain_id"], sec["section_id"]
    xs, ys = xy[:, 0].tolist(), xy[:, 1].tolist()
    cols = {
        "patch_id": pa.array([patch_id(b, sid, x, y, g) for x, y in zip(xs, ys)], pa.string()),
        "brain_id": _repeat(b, n, pa.string()), "section_id": _repeat(sid, n, pa.int32()),
        "x": pa.array(xy[:, 0], pa.int32()), "y": pa.array(xy[:, 1], pa.int32()), "split": _repeat(split, n, pa.string()),
        "label": pa.array(labels, pa.int32()), "spacing_um": _repeat(g.spacing_um, n, pa.float32()),
        "content_hash": _repeat(sec["content_hash"], n, pa.string()), "tiling_hash": _repeat(th, n, pa.string()),
        "ref_xyz": list_array(np.asarray(xyz, np.float64), pa.float64()),
        **window_columns(uri, xy[:, 0], xy[:, 1], g, tiling.block_px), **corner_arrays(idx, w),
    }
    return pa.Table.from_pydict(cols, schema=out), None


def centres_task(tiling: TilingSettings, inv_affine: np.ndarray, area_index_of: dict[int, int]):
    """A mapInArrow function: the plan's sections to tile in (one row each, with `split` and `tiling_hash`),
    `outcome_schema` rows out."""
    out = outcome_schema()

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for sec in batch.to_pylist():  # a section's parameters; its centres stay columnar
                rows, err = section_centres(sec, tiling, sec["split"], inv_affine, area_index_of, sec["tiling_hash"])
                if rows.num_rows:
                    yield from rows.append_column("error", pa.nulls(rows.num_rows, pa.string())).to_batches()
                else:
                    only = {f.name: pa.nulls(1, f.type) for f in out}
                    only.update(brain_id=pa.array([sec["brain_id"]], pa.string()),
                                section_id=pa.array([sec["section_id"]], pa.int32()), error=pa.array([err], pa.string()))
                    yield pa.RecordBatch.from_pydict(only, schema=out)

    return run
