"""Stage B of tiling, one Spark task per window block: read the block once at the patch level, cut the patches.

The one place where a patch is cut: the tile job cuts its grid here, and build_graph cuts a patch centred
at each of its nodes here too (`graph/features.py`), so a node's patch and the training patches share the
level, window, resampling and block-wise reads.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from cytolake.io.images import LevelReader
from cytolake.schemas import schema
from cytolake.tiling.geometry import PatchGeometry, window_origin

BLOCK = ["brain_id", "section_id", "block"]


def window_columns(image_uri: str, xs: np.ndarray, ys: np.ndarray, g: PatchGeometry, block_px: int) -> dict[str, pa.Array]:
    """What `cut_patches` needs besides brain_id, section_id and the centres to cut a patch at each level-0
    centre (xs, ys) of one section: its image, the level and window read there, the patch size (height,
    width) and the window block (`block_px` level-0 pixels a side) that groups the reads."""
    n, xs, ys = len(xs), np.asarray(xs, np.int64), np.asarray(ys, np.int64)

    def repeat(value, type_):
        return pa.repeat(pa.scalar(value, type_), n)

    return {"image_uri": repeat(image_uri, pa.string()), "level": repeat(g.level, pa.int32()),
            "window_px": repeat(g.window_px, pa.int32()), "height": repeat(g.patch_px, pa.int32()),
            "width": repeat(g.patch_px, pa.int32()),
            "block": pa.array([f"{x // block_px}_{y // block_px}" for x, y in zip(xs.tolist(), ys.tolist())],
                              pa.string())}


def resample(window: np.ndarray, size: int) -> np.ndarray:
    """A square window brought to size x size: block means for integer factors, else antialiased resize."""
    n = window.shape[0]
    if n == size:
        return window
    if n % size == 0:
        f = n // size
        return np.rint(window.reshape(size, f, size, f).mean(axis=(1, 3))).astype(np.uint8)
    from skimage.transform import resize

    return np.rint(resize(window, (size, size), order=1, anti_aliasing=n > size, preserve_range=True)).astype(np.uint8)


def cut_block(centres: pa.Table, reader: LevelReader) -> pa.Array:
    """The pixels (one binary value per row) of the centres of one block of one section, read in one window."""
    level, win, size = centres["level"][0].as_py(), centres["window_px"][0].as_py(), centres["height"][0].as_py()
    tops, lefts = window_origin(centres["x"].to_numpy(), centres["y"].to_numpy(), level, win)
    r0, c0 = int(tops.min()), int(lefts.min())
    block = reader.window(r0, c0, int(tops.max()) + win - r0, int(lefts.max()) + win - c0)
    return pa.array([np.ascontiguousarray(resample(block[top:top + win, left:left + win], size)).tobytes()
                     for top, left in zip((tops - r0).tolist(), (lefts - c0).tolist())], pa.binary())


def blocks_of(centres: pa.Table) -> Iterator[pa.Table]:
    """The centres grouped by (brain, section, block), in that order (consecutive blocks share a section)."""
    t = centres.sort_by([(c, "ascending") for c in BLOCK])
    if not t.num_rows:
        return
    keys = [t[c].to_numpy(zero_copy_only=False) for c in BLOCK]
    starts = np.r_[0, np.flatnonzero(np.logical_or.reduce([k[1:] != k[:-1] for k in keys])) + 1, t.num_rows]
    for a, b in zip(starts[:-1].tolist(), starts[1:].tolist()):
        yield t.slice(a, b - a)


def cut_blocks(blocks: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """Each block's centres with their `image` column, one image level open at a time: consecutive blocks of a
    section share the reader. Opening a pyramidal TIFF per block cost a header parse each time and raised a
    task's resident memory by allocator leftovers (`benchmarks/throughput/tile_memory.py`;
    benchmarks/results/tiling.md, "Tiling memory as the section grows")."""
    reader, opened = None, None
    try:
        for centres in blocks:
            key = (centres["image_uri"][0].as_py(), centres["level"][0].as_py())
            if key != opened:
                if reader is not None:
                    reader.close()
                reader, opened = LevelReader(*key), key
            yield centres.append_column("image", cut_block(centres, reader))
    finally:
        if reader is not None:
            reader.close()


def cut_patches(centres: pa.Table) -> Iterator[pa.Table]:
    """The centres (rows with brain_id, section_id, x, y and the `window_columns`; other columns ride
    along) with their `image` column, block by block in (brain, section, block) order: the pixels of one
    block at a time, never a whole section's."""
    return cut_blocks(blocks_of(centres))


def read_patches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: centre rows (with pmap) in, patch rows of the `patches` schema out, block by block."""
    target = schema("patches").arrow()
    batches = list(batches)
    if not batches:
        return
    for patches in cut_patches(pa.Table.from_batches(batches)):
        yield from patches.select(target.names).cast(target).to_batches()
