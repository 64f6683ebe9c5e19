"""Pure geometry of tiling: pyramid level choice, the patch grid, ids and splits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xxhash

from cytolake.config import TilingSettings
from cytolake.io.pyramid import coarsest_level


@dataclass(frozen=True)
class PatchGeometry:
    level: int  # pyramid level the patch is read from (the nearest level at least as fine as the target)
    level_spacing_um: float
    window_px: int  # side of the window read at that level
    patch_px: int
    spacing_um: float


def patch_geometry(tiling: TilingSettings, spacing_um: float, levels: int) -> PatchGeometry:
    """Read from the coarsest level whose spacing is still <= the target spacing (levels halve in size)."""
    level = coarsest_level(spacing_um, tiling.spacing_um, levels)
    ls = spacing_um * 2**level
    window = max(1, int(round(tiling.patch_px * tiling.spacing_um / ls)))
    return PatchGeometry(level, ls, window, tiling.patch_px, tiling.spacing_um)


def window_origin(x, y, level: int, window_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col), at pyramid `level`, of the top-left pixel of the window_px window around level-0 centre (x, y).

    Scalars or numpy arrays. Tiling and every measurement of it use this one rule.
    """
    f = 2**level
    return (np.floor(np.asarray(y) / f - window_px / 2).astype(np.int64),
            np.floor(np.asarray(x) / f - window_px / 2).astype(np.int64))


def tiling_hash(tiling: TilingSettings) -> str:
    """Fingerprint of everything that decides which patches a section gets and what they hold."""
    key = f"{tiling.patch_px}/{tiling.spacing_um}/{tiling.stride_um}/{tiling.mask_spacing_um}/{tiling.mask_threshold}"
    return xxhash.xxh3_64_hexdigest(key.encode())


def placement_hash(th: str, warp_hash: str | None) -> str:
    """A section's tiling hash: the settings' fingerprint, and the brain's warp when it has one (patches
    cut under another warp have other ref_xyz and pmap vectors, so a new warp re-tiles)."""
    return th if not warp_hash else xxhash.xxh3_64_hexdigest(f"{th}/{warp_hash}".encode())


def grid_centres(mask: np.ndarray, mask_scale: float, stride_px: float, width: int, height: int) -> np.ndarray:
    """Level-0 (x, y) of the grid points (step `stride_px`, offset half a step) that fall inside the mask.

    `mask_scale` is level-0 pixels per mask pixel; a point is inside when its mask pixel is set.
    """
    xs = np.arange(stride_px / 2, width, stride_px)
    ys = np.arange(stride_px / 2, height, stride_px)
    gx, gy = np.meshgrid(np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64))
    mi = np.minimum((gy / mask_scale).astype(np.int64), mask.shape[0] - 1)
    mj = np.minimum((gx / mask_scale).astype(np.int64), mask.shape[1] - 1)
    inside = mask[mi, mj]
    return np.stack([gx[inside], gy[inside]], axis=1)


def patch_id(brain_id: str, section_id: int, x: int, y: int, g: PatchGeometry) -> str:
    return xxhash.xxh3_128_hexdigest(f"{brain_id}/{section_id}/{x}/{y}/{g.patch_px}/{g.spacing_um}".encode())


def assign_splits(sections: list[tuple[str, int, bool]], tiling: TilingSettings) -> dict[tuple[str, int], str]:
    """Split per (brain, section, annotated): `transfer` for held-out brains; of each training brain,
    test_fraction of the annotated sections and of the unannotated ones is `test` (stratified, so the test
    split always has labels to score when the brain has any).

    Test sections are a systematic sample along the cutting order (section ids), one per interval of
    1/test_fraction sections, at a seeded phase within the middle half of each interval: a test split at
    the slab's end would hold areas no training section shows and score the extrapolation, not the method.
    """
    out: dict[tuple[str, int], str] = {}
    groups: dict[tuple[str, bool], list[int]] = {}
    for b, s, annotated in sections:
        if b in tiling.transfer_brains:
            out[(b, s)] = "transfer"
        else:
            groups.setdefault((b, annotated), []).append(s)
    for (b, annotated), ss in groups.items():
        ss = sorted(ss)
        n_test = math.floor(tiling.test_fraction * len(ss) + 0.5)
        if tiling.test_fraction > 0 and len(ss) > 1:
            n_test = max(n_test, 1)
        step = len(ss) / max(n_test, 1)
        phase = 0.25 + 0.5 * xxhash.xxh64_intdigest(f"{tiling.seed}/{b}/{annotated}".encode()) / 2**64
        test = {ss[min(len(ss) - 1, math.floor((i + phase) * step))] for i in range(n_test)}
        out.update({(b, s): "test" if s in test else "train" for s in ss})
    return out
