"""Stage B of tiling, one Spark task per window block: read the block once at the patch level, cut the patches."""

from __future__ import annotations

from collections.abc import Iterator

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


def cut_block(rows: list[dict]) -> list[dict]:
    """Patch rows (with image bytes) for the centres of one block of one section, read in one window."""
    first = rows[0]
    level, win = first["level"], first["window_px"]
    tops, lefts = window_origin(np.array([r["x"] for r in rows]), np.array([r["y"] for r in rows]), level, win)
    r0, c0 = int(tops.min()), int(lefts.min())
    with LevelReader(first["image_uri"], level) as reader:
        block = reader.window(r0, c0, int(tops.max()) + win - r0, int(lefts.max()) + win - c0)
    out = []
    for r, top, left in zip(rows, (tops - r0).tolist(), (lefts - c0).tolist()):
        patch = resample(block[top:top + win, left:left + win], r["height"])
        out.append({**r, "image": np.ascontiguousarray(patch).tobytes()})
    return out


def read_patches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: centre rows (with pmap) in, patch rows of the `patches` schema out, block by block."""
    target = schema("patches").arrow()
    blocks: dict[tuple, list[dict]] = {}
    for b in batches:
        for r in b.to_pylist():
            blocks.setdefault((r["brain_id"], r["section_id"], r["block"]), []).append(r)
    for key in sorted(list(blocks)):
        rows = cut_block(blocks.pop(key))
        yield pa.RecordBatch.from_pylist([{n: r[n] for n in target.names} for r in rows], schema=target)
