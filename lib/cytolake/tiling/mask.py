"""The low-resolution cortex mask of a section, from a pyramid level near `mask_spacing_um`.

A section may have no level that coarse (scanners write single-level files too). The mask level is then
built from the coarsest level there is by area averaging, one band of rows at a time, so the memory a
section takes is the mask's own plus one band (a chunk-row of the image, bounded in width by reading it in
column blocks), never the level's: a 100k x 100k px single-level BigTIFF is read once, band by band.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

from cytolake.io.images import ImageError, LevelReader
from cytolake.io.pyramid import coarsest_level, halving_levels

BAND_BYTES = 16 << 20  # the uint8 window read at a time (band rows x column block)


def mask_level(level_shapes: tuple[tuple[int, int], ...], spacing_um: float, mask_spacing_um: float) -> int:
    """The coarsest level whose spacing does not exceed the mask spacing, among the levels that halve each other."""
    return coarsest_level(spacing_um, mask_spacing_um, halving_levels(level_shapes))


def mask_factor(level_spacing_um: float, mask_spacing_um: float) -> int:
    """How many pixels of the read level go into one mask pixel, per side: the power of two that brings the
    level's spacing nearest the mask spacing without exceeding it (1 when a pyramid level is already there)."""
    return 2 ** coarsest_level(level_spacing_um, mask_spacing_um)


def cortex_mask(low: np.ndarray, level_spacing_um: float, threshold: int | None) -> np.ndarray:
    """Cortex where the image, smoothed over ~150 um, is darker than `threshold` (None: Otsu's threshold).

    Cell-body stain: background and white matter are bright, cortex is dark (dense cells, neuropil).
    """
    from skimage.filters import threshold_otsu

    smooth = gaussian_filter(low.astype(np.float32), max(150.0 / level_spacing_um, 0.5))
    if threshold is None:
        if smooth.max() - smooth.min() < 1:
            return np.zeros(smooth.shape, bool)
        threshold = threshold_otsu(smooth)
    return smooth < threshold


def area_average(r: LevelReader, f: int, chunk: tuple[int, int] | None = None) -> np.ndarray:
    """The level read by `r`, averaged over f x f blocks (edge blocks over the pixels they have), read in bands
    of whole chunk rows and column blocks of whole chunks, so each stored chunk is decoded once and at most
    one band is held. f = 1 returns the level itself, also read band by band."""
    h, w = r.shape
    ch, cw = chunk or r.chunks
    ch, cw = max(1, min(ch, h)), max(1, min(cw, w))
    band_h = f * math.ceil(ch / f)  # whole mask rows covering a chunk row
    if band_h * cw > BAND_BYTES:  # a chunk this big (a whole-width strip): fewer rows, decoded more than once
        band_h = max(f, BAND_BYTES // cw // f * f)
    unit = math.lcm(cw, f)  # column blocks of whole chunks and whole mask columns
    col_w = max(unit, (BAND_BYTES // band_h) // unit * unit)
    out_h, out_w = math.ceil(h / f), math.ceil(w / f)
    out = np.empty((out_h, out_w), np.float32)
    col_counts = np.diff(np.r_[np.arange(0, w, f), w])
    for r0 in range(0, h, band_h):
        r1 = min(h, r0 + band_h)
        rows = np.zeros((math.ceil((r1 - r0) / f), out_w), np.float64)
        for c0 in range(0, w, col_w):
            c1 = min(w, c0 + col_w)
            block = r.window(r0, c0, r1 - r0, c1 - c0)
            cols = np.arange(0, c1 - c0, f)
            for i, b0 in enumerate(range(0, r1 - r0, f)):
                # a buffered reduction: never a float or int64 copy of the whole window (reduceat with a dtype makes one)
                line = block[b0:b0 + f].sum(axis=0, dtype=np.uint64)
                rows[i, c0 // f:c0 // f + len(cols)] += np.add.reduceat(line, cols)  # col_w is a multiple of f
        row_counts = np.diff(np.r_[np.arange(0, r1 - r0, f), r1 - r0])
        out[r0 // f:r0 // f + rows.shape[0]] = rows / (row_counts[:, None] * col_counts[None, :])
    return out


def section_mask(path: str, level: int, level_spacing_um: float, threshold: int | None, factor: int = 1,
                 max_mask_px: int | None = None) -> np.ndarray:
    """The cortex mask from `level`, area-averaged by `factor`; ImageError when the mask would exceed
    `max_mask_px` pixels or memory runs out (that section's error, not the job's)."""
    with LevelReader(path, level) as r:
        n = math.ceil(r.shape[0] / factor) * math.ceil(r.shape[1] / factor)
        if max_mask_px is not None and n > max_mask_px:
            raise ImageError(f"{path}: the cortex mask would be {n:,} px (level {level}, {r.shape[1]}x{r.shape[0]} px "
                             f"averaged {factor}x), over tiling.max_mask_px = {max_mask_px:,}")
        try:
            low = area_average(r, factor)
            return cortex_mask(low, level_spacing_um * factor, threshold)
        except MemoryError:
            raise ImageError(f"{path}: out of memory building the cortex mask ({n:,} px from level {level}, "
                             f"{r.shape[1]}x{r.shape[0]} px)") from None


def section_cortex_mask(uri: str, spacing_um: float, level_shapes: tuple[tuple[int, int], ...], mask_spacing_um: float,
                        threshold: int | None, max_mask_px: int | None = None) -> tuple[np.ndarray, float]:
    """The section's cortex mask as tiling computes it, and its scale (level-0 pixels per mask pixel)."""
    ml = mask_level(level_shapes, spacing_um, mask_spacing_um)
    f = mask_factor(spacing_um * 2**ml, mask_spacing_um)
    mask = section_mask(uri, ml, spacing_um * 2**ml, threshold, f, max_mask_px)
    return mask, level_shapes[0][1] / level_shapes[ml][1] * f
