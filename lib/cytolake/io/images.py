"""Tiled section images: pyramidal BigTIFF written with tifffile, headers and windows read without loading the image."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile


class ImageError(ValueError):
    """An image that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    levels: int
    dtype: str
    spacing_um: float | None  # from the header's resolution tags, None when absent
    level_shapes: tuple[tuple[int, int], ...]


def downsample2(img: np.ndarray) -> np.ndarray:
    """Halve an image by 2x2 block means (odd edges dropped)."""
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    v = img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return np.rint(v).astype(img.dtype) if np.issubdtype(img.dtype, np.integer) else v.astype(img.dtype)


def pyramid_levels(shape: tuple[int, int], min_px: int) -> int:
    n = 1
    h, w = shape
    while min(h, w) // 2 >= min_px:
        h, w, n = h // 2, w // 2, n + 1
    return n


def write_pyramid_tiff(path: str | Path, image: np.ndarray, spacing_um: float, tile: int = 256,
                       min_px: int = 256, compression: str = "zlib") -> None:
    """Write a tiled BigTIFF with a 2x pyramid in SubIFDs; spacing goes in the resolution tags (px/cm).

    The file is written under a temporary name and renamed, so a reader never sees half a file.
    """
    path = Path(path)
    levels = pyramid_levels(image.shape[:2], min_px)
    tmp = path.with_name(path.name + ".part")
    opts = dict(tile=(tile, tile), compression=compression, photometric="minisblack", resolutionunit="CENTIMETER")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        tif.write(image, subifds=levels - 1, resolution=(1e4 / spacing_um, 1e4 / spacing_um),
                  metadata={"spacing_um": spacing_um}, **opts)
        level = image
        for n in range(1, levels):
            level = downsample2(level)
            s = spacing_um * 2**n
            tif.write(level, subfiletype=1, resolution=(1e4 / s, 1e4 / s), **opts)
    os.replace(tmp, path)


def _spacing_from_page(page) -> float | None:
    tags = page.tags
    if "XResolution" not in tags:
        return None
    num, den = tags["XResolution"].value
    if not num or not den:
        return None
    unit = tags["ResolutionUnit"].value if "ResolutionUnit" in tags else 2
    per_um = {2: 25400.0, 3: 10000.0}.get(int(unit))
    if per_um is None:
        return None
    return per_um / (num / den)


def _check_complete(path: Path, tf: tifffile.TiffFile) -> None:
    """Every tile of every level must lie inside the file: catches files truncated mid-write."""
    size = path.stat().st_size
    for level in tf.series[0].levels:
        for page in level.pages:
            if page is None:
                continue
            offs, counts = page.dataoffsets, page.databytecounts
            if len(offs) and (max(o + c for o, c in zip(offs, counts)) > size or 0 in counts):
                raise ImageError(f"{path}: truncated (image data ends past the {size}-byte file)")


def read_info(path: str | Path) -> ImageInfo:
    """Size, levels, dtype and spacing from the header; raises ImageError for unreadable or truncated files."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: image file not found")
    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            shapes = tuple(tuple(int(d) for d in lvl.shape[:2]) for lvl in series.levels)
            _check_complete(path, tf)
            page = series.levels[0].pages[0]
            info = ImageInfo(
                width=shapes[0][1], height=shapes[0][0], levels=len(shapes), dtype=str(series.dtype),
                spacing_um=_spacing_from_page(page), level_shapes=shapes,
            )
    except ImageError:
        raise
    except Exception as e:  # tifffile raises many kinds of error on damaged files
        raise ImageError(f"{path}: not a readable TIFF ({type(e).__name__}: {e})") from None
    if len(series.shape) != 2:
        raise ImageError(f"{path}: expected a single-channel (grayscale) image, got shape {series.shape}")
    return info


class LevelReader:
    """Windows of one pyramid level of a tiled image, read tile by tile (never the whole image)."""

    def __init__(self, path: str | Path, level: int):
        import zarr

        self.path = Path(path)
        self._store = tifffile.imread(self.path, aszarr=True, level=level)
        self._arr = zarr.open(self._store, mode="r")
        self.shape = tuple(int(d) for d in self._arr.shape[:2])

    def window(self, r0: int, c0: int, h: int, w: int, fill: int = 255) -> np.ndarray:
        """The h x w window at (r0, c0); parts outside the image are `fill` (bright background)."""
        out = np.full((h, w), fill, np.uint8)
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + h, self.shape[0]), min(c0 + w, self.shape[1])
        if rr1 > rr0 and cc1 > cc0:
            try:
                out[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = self._arr[rr0:rr1, cc0:cc1]
            except Exception as e:
                raise ImageError(f"{self.path}: cannot read window rows {rr0}:{rr1} cols {cc0}:{cc1} ({e})") from None
        return out

    def close(self) -> None:
        self._store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
