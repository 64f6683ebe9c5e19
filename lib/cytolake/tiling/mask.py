"""The low-resolution cortex mask of a section, from a pyramid level near `mask_spacing_um`."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from cytolake.io.images import LevelReader


def mask_level(level_shapes: tuple[tuple[int, int], ...], spacing_um: float, mask_spacing_um: float) -> int:
    """The coarsest level whose spacing does not exceed the mask spacing."""
    level = 0
    while level + 1 < len(level_shapes) and spacing_um * 2 ** (level + 1) <= mask_spacing_um:
        level += 1
    return level


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


def section_mask(path: str, level: int, level_spacing_um: float, threshold: int | None) -> np.ndarray:
    with LevelReader(path, level) as r:
        low = r.window(0, 0, *r.shape)
    return cortex_mask(low, level_spacing_um, threshold)


def section_cortex_mask(uri: str, spacing_um: float, level_shapes: tuple[tuple[int, int], ...], mask_spacing_um: float,
                        threshold: int | None) -> tuple[np.ndarray, float]:
    """The section's cortex mask as tiling computes it, and its scale (level-0 pixels per mask pixel)."""
    ml = mask_level(level_shapes, spacing_um, mask_spacing_um)
    mask = section_mask(uri, ml, spacing_um * 2**ml, threshold)
    return mask, level_shapes[0][1] / level_shapes[ml][1]
