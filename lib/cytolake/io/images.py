"""Tiled section images: pyramidal BigTIFF written with tifffile, headers and windows read without loading the image."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from cytolake.io.files import special_file


class ImageError(ValueError):
    """An image that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    levels: int
    dtype: str
    spacing_um: float | None  # from the header (resolution tags, Aperio MPP, OME-Zarr scale); None when absent
    level_shapes: tuple[tuple[int, int], ...]
    channels: int = 1  # 3 for RGB, read as luma (see to_gray)


# The recorded rule for RGB slides: ITU-R BT.601 luma, as PIL's "L" conversion.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 luma of an (..., 3) uint8 RGB array: round(0.299 R + 0.587 G + 0.114 B)."""
    return np.rint(rgb[..., :3].astype(np.float32) @ np.asarray(LUMA_WEIGHTS, np.float32)).astype(np.uint8)


def is_ome_zarr(path: str | Path) -> bool:
    return Path(path).is_dir()


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


def _tiff_info(path: Path) -> ImageInfo:
    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        shapes = tuple(tuple(int(d) for d in lvl.shape[:2]) for lvl in series.levels)
        _check_complete(path, tf)
        page = series.levels[0].pages[0]
        spacing = _spacing_from_page(page)
        if spacing is None and tf.is_svs:  # Aperio keeps microns per pixel in the description: "|MPP = 0.499|"
            m = re.search(r"\|\s*MPP\s*=\s*([0-9.]+)", page.description)
            spacing = float(m.group(1)) if m else None
        shape = series.shape
        if len(shape) == 3 and shape[-1] in (3, 4) and series.axes.endswith("S"):
            channels = 3
        elif len(shape) == 2:
            channels = 1
        else:
            raise ImageError(f"{path}: expected a grayscale or RGB image, got shape {shape} (axes {series.axes})")
        return ImageInfo(shapes[0][1], shapes[0][0], len(shapes), str(series.dtype), spacing, shapes, channels)


def _zarr_multiscale(path: Path):
    import zarr

    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not ms:
        raise ImageError(f"{path}: not an OME-Zarr image (no multiscales metadata)")
    return group, ms[0]


def _zarr_info(path: Path) -> ImageInfo:
    group, ms = _zarr_multiscale(path)
    axes = [a["name"] if isinstance(a, dict) else a for a in ms.get("axes", ["y", "x"])]
    if axes not in (["y", "x"], ["c", "y", "x"]):
        raise ImageError(f"{path}: OME-Zarr axes {axes} not supported (need y,x or c,y,x)")
    arrays = [group[d["path"]] for d in ms["datasets"]]
    channels = 1 if axes == ["y", "x"] else int(arrays[0].shape[0])
    if channels not in (1, 3):
        raise ImageError(f"{path}: OME-Zarr with {channels} channels (need 1 or 3)")
    shapes = tuple(tuple(int(d) for d in a.shape[-2:]) for a in arrays)
    spacing = None
    for t in ms["datasets"][0].get("coordinateTransformations", []):
        if t.get("type") == "scale":
            unit = next((a.get("unit") for a in ms.get("axes", []) if isinstance(a, dict) and a["name"] == "x"), "micrometer")
            spacing = float(t["scale"][-1]) * {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3}.get(unit, 1.0)
    return ImageInfo(shapes[0][1], shapes[0][0], len(shapes), str(arrays[0].dtype), spacing, shapes, channels)


def read_info(path: str | Path) -> ImageInfo:
    """Size, levels, dtype, channels and spacing from the header; ImageError for missing, unreadable or truncated input."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: image file not found")
    if (kind := special_file(path)) is not None:
        raise ImageError(f"{path}: not a regular file ({kind}); not opened")
    try:
        return _zarr_info(path) if is_ome_zarr(path) else _tiff_info(path)
    except ImageError:
        raise
    except Exception as e:  # readers raise many kinds of error on damaged input
        kind = "OME-Zarr" if is_ome_zarr(path) else "TIFF"
        raise ImageError(f"{path}: not a readable {kind} ({type(e).__name__}: {e})") from None


def write_ome_zarr(path: str | Path, image: np.ndarray, spacing_um: float, chunk: int = 256, min_px: int = 256) -> None:
    """Write a 2D uint8 image as an OME-Zarr (NGFF 0.4) multiscale pyramid."""
    import zarr

    levels = pyramid_levels(image.shape[:2], min_px)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets, level = [], image
    for n in range(levels):
        if n:
            level = downsample2(level)
        group.create_array(str(n), data=level, chunks=(chunk, chunk))
        datasets.append({"path": str(n), "coordinateTransformations": [{"type": "scale", "scale": [spacing_um * 2**n] * 2}]})
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "y", "type": "space", "unit": "micrometer"},
                                                              {"name": "x", "type": "space", "unit": "micrometer"}],
                                   "datasets": datasets}]


class LevelReader:
    """Windows of one pyramid level of a tiled image (TIFF family or OME-Zarr), read chunk by chunk,
    never the whole image. RGB is returned as luma (to_gray)."""

    def __init__(self, path: str | Path, level: int):
        import zarr

        self.path = Path(path)
        self._store = None
        if is_ome_zarr(self.path):
            group, ms = _zarr_multiscale(self.path)
            self._arr = group[ms["datasets"][level]["path"]]
            self._rgb = self._arr.ndim == 3 and self._arr.shape[0] == 3
            self._channels_first = True
        else:
            self._store = tifffile.imread(self.path, aszarr=True, level=level)
            self._arr = zarr.open(self._store, mode="r")
            self._rgb = self._arr.ndim == 3
            self._channels_first = False
        self.shape = tuple(int(d) for d in (self._arr.shape[-2:] if self._channels_first else self._arr.shape[:2]))
        ch = self._arr.chunks
        # (rows, cols) of one stored chunk (a TIFF tile or strip, a Zarr chunk): reads aligned to it decode it once
        self.chunks = tuple(int(d) for d in (ch[-2:] if self._channels_first else ch[:2]))

    def _read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        if self._channels_first:
            a = self._arr[..., r0:r1, c0:c1]
            return to_gray(np.moveaxis(a, 0, -1)) if self._rgb else a
        a = self._arr[r0:r1, c0:c1]
        return to_gray(a) if self._rgb else a

    def window(self, r0: int, c0: int, h: int, w: int, fill: int = 255) -> np.ndarray:
        """The h x w window at (r0, c0); parts outside the image are `fill` (bright background)."""
        out = np.full((h, w), fill, np.uint8)
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + h, self.shape[0]), min(c0 + w, self.shape[1])
        if rr1 > rr0 and cc1 > cc0:
            try:
                out[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = self._read(rr0, rr1, cc0, cc1)
            except Exception as e:
                raise ImageError(f"{self.path}: cannot read window rows {rr0}:{rr1} cols {cc0}:{cc1} ({e})") from None
        return out

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
