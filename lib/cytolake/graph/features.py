"""Node features: a patch centred at each node's own image location, cut and embedded by the tile and embed
stages' own code, section by section inside build_graph's per-brain task.

Why not the nearest patch of the tiling grid: a grid patch is up to half a stride away from the node, and
across an area border that is another area's tissue; the node's pmap, label and coordinates are taken at
its own location, so its image evidence is taken there too. Why the same code as the training patches: a
node patch must look like what the encoder was trained and evaluated on (same level choice, window,
resampling and pixel spacing), or the features of the graph come from another distribution.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from cytolake.config import TilingSettings
from cytolake.embed.inference import embedded_batches
from cytolake.io.images import read_info
from cytolake.tiling.geometry import patch_geometry, patch_id
from cytolake.tiling.patches import cut_patches, window_columns


@dataclass(frozen=True)
class NodeFeatures:
    patch_id: list[str]  # per node: the id tiling gives a patch at that centre (equal to a grid patch's there)
    features: np.ndarray  # (nodes, feature_dim) float32


def node_centres(brain_id: str, section: dict, rows: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                 tiling: TilingSettings) -> pa.Table:
    """The nodes of one section as centres `cut_patches` takes: `row` (the node's index in the caller's
    arrays), brain_id, section_id, x, y, patch_id and the `window_columns` of the tiling geometry (the
    same patch size, spacing and level choice as the section's grid patches)."""
    g = patch_geometry(tiling, section["spacing_um"], read_info(section["image_uri"]).levels)
    n, sid = len(rows), int(section["section_id"])
    return pa.table({
        "row": pa.array(rows, pa.int64()), "brain_id": pa.repeat(pa.scalar(brain_id), n),
        "section_id": pa.repeat(pa.scalar(sid, pa.int32()), n),
        "x": pa.array(xs, pa.int32()), "y": pa.array(ys, pa.int32()),
        "patch_id": pa.array([patch_id(brain_id, sid, x, y, g) for x, y in zip(xs.tolist(), ys.tolist())], pa.string()),
        **window_columns(section["image_uri"], xs, ys, g, tiling.block_px)})


def node_features(brain_id: str, sections: list[dict], section_ids: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                  tiling: TilingSettings, model, device: str, batch_size: int) -> NodeFeatures:
    """The features of nodes at level-0 (xs, ys) of their sections (`sections`: section_id, image_uri,
    spacing_um): one section at a time, its patches cut block by block and embedded `batch_size` at a time,
    so a task holds one block's window and one forward pass of pixels, never a whole section's or brain's.
    An unreadable image raises ImageError (the brain's error, reported by the caller)."""
    n = len(section_ids)
    ids = np.empty(n, object)
    features: np.ndarray | None = None
    by_id = {int(s["section_id"]): s for s in sections}

    def centres() -> Iterator[pa.Table]:
        for sid in np.unique(section_ids).tolist():
            rows = np.flatnonzero(section_ids == sid)
            yield from cut_patches(node_centres(brain_id, by_id[sid], rows, xs[rows], ys[rows], tiling))

    for done, emb in embedded_batches(centres(), model, device, batch_size):
        if features is None:
            features = np.empty((n, emb.shape[1]), np.float32)
        rows = done["row"].to_numpy()
        features[rows], ids[rows] = emb, done["patch_id"].to_pylist()
    if features is None:
        features = np.empty((0, 0), np.float32)
    return NodeFeatures(ids.tolist(), features)
