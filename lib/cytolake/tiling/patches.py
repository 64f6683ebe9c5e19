"""Stage B of tiling, one Spark task per window block: read the block once at the patch level, cut the patches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

from cytolake.io.images import LevelReader
from cytolake.schemas import schema
from cytolake.tiling.geometry import window_origin


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


def cut_block(rows: list[dict], reader: LevelReader) -> list[dict]:
    """Patch rows (with image bytes) for the centres of one block of one section, read in one window."""
    first = rows[0]
    level, win = first["level"], first["window_px"]
    tops, lefts = window_origin(np.array([r["x"] for r in rows]), np.array([r["y"] for r in rows]), level, win)
    r0, c0 = int(tops.min()), int(lefts.min())
    block = reader.window(r0, c0, int(tops.max()) + win - r0, int(lefts.max()) + win - c0)
    out = []
    for r, top, left in zip(rows, (tops - r0).tolist(), (lefts - c0).tolist()):
        patch = resample(block[top:top + win, left:left + win], r["height"])
        out.append({**r, "image": np.ascontiguousarray(patch).tobytes()})
    return out


def cut_blocks(blocks: Iterable[list[dict]]) -> Iterator[list[dict]]:
    """cut_block over blocks in order, one image level open at a time: consecutive blocks of a section share
    the reader. Opening a pyramidal TIFF per block cost a header parse each time and raised a task's resident
    memory by up to ~60 MB of allocator leftovers (`benchmarks/tile_memory.py`)."""
    reader, opened = None, None
    try:
        for rows in blocks:
            key = (rows[0]["image_uri"], rows[0]["level"])
            if key != opened:
                if reader is not None:
                    reader.close()
                reader, opened = LevelReader(*key), key
            yield cut_block(rows, reader)
    finally:
        if reader is not None:
            reader.close()


def read_patches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: centre rows (with pmap) in, patch rows of the `patches` schema out, block by block."""
    target = schema("patches").arrow()
    blocks: dict[tuple, list[dict]] = {}
    for b in batches:
        for r in b.to_pylist():
            blocks.setdefault((r["brain_id"], r["section_id"], r["block"]), []).append(r)
    for rows in cut_blocks(blocks.pop(key) for key in sorted(blocks)):
        yield pa.RecordBatch.from_pylist([{n: r[n] for n in target.names} for r in rows], schema=target)
