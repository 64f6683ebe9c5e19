"""Which level of an image pyramid to read. Level k has 2**k times the spacing of level 0 (each level
halves the one below); `halving_levels` says how many levels of a file are such a pyramid."""

from __future__ import annotations

SPACING_TOLERANCE = 1e-9  # relative: a target that is exactly a level's spacing picks that level despite float rounding


def coarsest_level(spacing_um: float, target_um: float, levels: int | None = None) -> int:
    """The largest k (below `levels` when given) with spacing_um * 2**k <= target_um: the coarsest level still
    at least as fine as the target; 0 when even level 0 is coarser. With `levels` None the pyramid is
    unbounded, which gives the power of two by which to average a level further."""
    k = 0
    while (levels is None or k + 1 < levels) and spacing_um * 2 ** (k + 1) <= target_um * (1 + SPACING_TOLERANCE):
        k += 1
    return k


def finest_level_within(level_shapes: tuple[tuple[int, int], ...], max_width_px: int) -> int:
    """The finest level (shapes (height, width) per level, finest first) at most `max_width_px` wide; the
    coarsest level when none is."""
    return next((i for i, (_, w) in enumerate(level_shapes) if w <= max_width_px), len(level_shapes) - 1)


def halving_levels(level_shapes: tuple[tuple[int, int], ...]) -> int:
    """How many levels, from level 0 on, each halve the one before (level k within a pixel of level 0 / 2**k on
    both sides): the levels whose spacing the choice above may assume. Levels after the first that does not
    (Aperio's 4x apart, a thumbnail) are not read for tiling: taken for 2x levels, they gave patches from the
    wrong place at the wrong scale. A file with none beyond level 0 is read and averaged from level 0."""
    h0, w0 = level_shapes[0]
    n = 1
    while n < len(level_shapes):
        h, w = level_shapes[n]
        if abs(h - h0 / 2**n) > 1 or abs(w - w0 / 2**n) > 1:
            break
        n += 1
    return n
