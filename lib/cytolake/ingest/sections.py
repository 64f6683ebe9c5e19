"""Inspection of one section: header, completeness, spacing, placement in the reference volume, content hash.

`inspect_section` is a pure function of its inputs and runs inside Spark tasks; it never raises for a
bad section but returns a row with status `error` and a message naming the file and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from cytolake.io.files import content_hash, signature
from cytolake.io.images import ImageError, is_ome_zarr, read_info
from cytolake.io.manifest import Entry
from cytolake.io.warps import WarpError, infer_format, load_warp, map_points, warp_hash

COMPARED = ["status", "error", "image_uri", "annotation_uri", "spacing_um", "width", "height", "levels", "channels",
            "content_hash", "file_size", "file_mtime_ns", "transform", "warp_uri", "warp_format", "warp_hash"]


@dataclass(frozen=True)
class Checks:
    ref_lo: tuple[float, float, float]  # MNI bounding box of the reference volume (mm)
    ref_hi: tuple[float, float, float]
    outside_tolerance_mm: float
    spacing_tolerance: float
    affine_scale_tolerance: float = 0.35


def _placement_error(transform: list[float], width: int, height: int, c: Checks, warp=None) -> str | None:
    """Where the section lands in the reference volume: its centre inside, its corners within the tolerance.
    With a warp, the affine places the pixels in the brain's space and the warp takes them to MNI."""
    a = np.asarray(transform, float).reshape(4, 4)
    if not np.allclose(a[3], [0, 0, 0, 1]):
        return f"affine's last row must be 0 0 0 1, got {a[3].tolist()}"
    pts = np.array([[(width - 1) / 2, (height - 1) / 2, 0, 1], [0, 0, 0, 1], [width - 1, 0, 0, 1],
                    [0, height - 1, 0, 1], [width - 1, height - 1, 0, 1]], float)
    mm = (pts @ a.T)[:, :3]
    if warp is not None:
        try:
            mm = map_points(warp, mm, where="warp")
        except WarpError as e:
            return f"the section does not fit the {e}"
    lo, hi = np.asarray(c.ref_lo), np.asarray(c.ref_hi)
    centre_out = np.any(mm[0] < lo) or np.any(mm[0] > hi)
    corner_out = np.any(mm[1:] < lo - c.outside_tolerance_mm) or np.any(mm[1:] > hi + c.outside_tolerance_mm)
    if centre_out or corner_out:
        where = "centre" if centre_out else "a corner"
        return (f"affine maps the section outside the reference volume: {where} at "
                f"{np.round(mm[0 if centre_out else 1], 1).tolist()} mm, volume spans "
                f"{np.round(lo, 1).tolist()}..{np.round(hi, 1).tolist()} mm")
    return None


def _affine_error(transform: list[float], spacing_um: float, c: Checks) -> str | None:
    """A section affine must map the pixel grid onto a plane at about the manifest's spacing: its in-plane
    linear part (the columns for pixel col and row) non-singular, each column's length within the tolerance
    of spacing_um. A zero or rank-1 linear part would put every patch at one point of the reference volume."""
    a = np.asarray(transform, float).reshape(4, 4)
    inplane = a[:3, :2]
    scale_um = np.linalg.norm(inplane, axis=0) * 1000.0
    sv = np.linalg.svd(inplane, compute_uv=False)
    shown = " x ".join(f"{v:.4g}" for v in scale_um)
    if sv[-1] <= 1e-9 * max(sv[0], 1e-12):
        return (f"affine's in-plane linear part is singular (column and row scale {shown} um/px, "
                f"singular values {np.round(sv * 1000, 6).tolist()} um/px); spacing_um is {spacing_um:g}")
    if np.any(np.abs(scale_um - spacing_um) > c.affine_scale_tolerance * spacing_um):
        return (f"affine's in-plane scale is {shown} um/px (column x row) but spacing_um is {spacing_um:g} um/px "
                f"(tolerance {c.affine_scale_tolerance:.0%}, ingest.affine_scale_tolerance)")
    return None


def _same_aspect(w: int, h: int, aw: int, ah: int) -> bool:
    """A label image at some downsampling of the section: both axes scale alike, to within one label pixel."""
    scale = w / aw
    return abs(ah * scale - h) <= scale + 0.01 * h


def _label_image_error(path, ann) -> str | None:
    """What keeps an annotation from being read as a label image (one channel of integer atlas ids + 1, a TIFF:
    tiling reads the label under each patch centre from it), None when nothing does."""
    if is_ome_zarr(path):
        return "annotation is an OME-Zarr folder; label images are read as TIFF"
    if ann.channels != 1:
        return (f"annotation has {ann.channels} channels (an RGB image); a label image has one, whose values are "
                "the atlas volume index + 1")
    if not np.issubdtype(np.dtype(ann.dtype), np.integer):
        return f"annotation dtype is {ann.dtype}; a label image holds integers (the atlas volume index + 1)"
    return None


def inspect_section(entry: Entry, prev: dict | None, checks: Checks, now: datetime | None = None,
                    hash_content: bool = True) -> dict:
    """The `sections` row for a manifest entry. `prev` is the registered row, whose hash is reused when
    the file's size and mtime are unchanged (hashing a whole section, many gigabytes at full resolution, is
    the expensive part).
    `hash_content=False` (`cytolake landing check`) runs every check but leaves the image unhashed."""
    row = {
        "brain_id": entry.brain_id, "section_id": entry.section_id, "status": "ok", "error": None,
        "image_uri": str(entry.image) if entry.image else entry.raw_image_path,
        "annotation_uri": str(entry.annotation) if entry.annotation else None,
        "spacing_um": entry.spacing_um, "transform": entry.transform,
        "warp_uri": str(entry.warp) if entry.warp else None, "warp_format": None, "warp_hash": None,
        "width": None, "height": None, "levels": None, "channels": None, "content_hash": None, "file_size": None, "file_mtime_ns": None,
        "ingested_at": now or datetime.now(timezone.utc),
    }

    def fail(msg: str) -> dict:
        return {**row, "status": "error", "error": msg}

    if entry.error:
        return fail(entry.error)
    try:
        info = read_info(entry.image)
    except ImageError as e:
        return fail(str(e))
    row.update(width=info.width, height=info.height, levels=info.levels)
    if info.dtype != "uint8":
        return fail(f"{entry.image}: image dtype is {info.dtype}, expected uint8")
    if info.spacing_um is not None and abs(info.spacing_um - entry.spacing_um) > checks.spacing_tolerance * entry.spacing_um:
        return fail(f"{entry.image}: spacing mismatch: manifest says {entry.spacing_um:g} um/px, "
                    f"the image header says {info.spacing_um:g} um/px")
    if (msg := _affine_error(entry.transform, entry.spacing_um, checks)) is not None:
        return fail(f"{entry.image}: {msg}")
    warp = None
    if entry.warp is not None:
        try:
            row["warp_format"] = infer_format(entry.warp, entry.warp_format)
            warp = load_warp(entry.warp, row["warp_format"])
            row["warp_hash"] = warp_hash(entry.warp)
        except WarpError as e:
            return fail(f"warp: {e}")
    if (msg := _placement_error(entry.transform, info.width, info.height, checks, warp)) is not None:
        return fail(f"{entry.image}: {msg}")
    if entry.annotation is not None:
        try:
            ann = read_info(entry.annotation)
        except ImageError as e:
            return fail(f"annotation: {e}")
        if (msg := _label_image_error(entry.annotation, ann)) is not None:
            return fail(f"{entry.annotation}: {msg}")
        if not _same_aspect(info.width, info.height, ann.width, ann.height):
            return fail(f"{entry.annotation}: annotation aspect {ann.width}x{ann.height} does not match the image's "
                        f"{info.width}x{info.height}")
    size, mtime = signature(entry.image)
    row.update(file_size=size, file_mtime_ns=mtime, channels=info.channels)
    if prev and (prev.get("file_size"), prev.get("file_mtime_ns")) == (size, mtime) and prev.get("content_hash"):
        row["content_hash"] = prev["content_hash"]
    elif not hash_content:
        row["content_hash"] = None
    else:
        row["content_hash"] = content_hash(entry.image)
    return row

