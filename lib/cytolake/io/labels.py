"""Label images: a section's annotation (or its truth) as an image whose pixel value is the atlas volume
index (`area_id`) + 1, and 0 where no area is labelled. The image may be coarser than the section; it
covers the same extent, so a level-0 section pixel maps to it by the width ratio."""

from __future__ import annotations

import numpy as np
import tifffile

from cytolake.io.files import special_file
from cytolake.io.images import ImageError


def label_values(area: np.ndarray, area_ids: np.ndarray) -> np.ndarray:
    """The label image of `area` (an area_index per pixel, negative where none), `area_ids[area_index]`
    being each area's volume index in the atlas file."""
    return np.where(area >= 0, np.asarray(area_ids)[np.maximum(area, 0)] + 1, 0)


def labels_at(annotation_uri: str | None, xs: np.ndarray, ys: np.ndarray, width: int,
              area_index_of: dict[int, int]) -> list[int | None]:
    """Area index at each level-0 point (xs, ys) of a section `width` px wide, from its label image; None
    where unlabelled, outside the atlas selection, or with no label image.

    Only the label image's chunks under the points are read (a label image of a whole section can be GBs).
    """
    if not annotation_uri:
        return [None] * len(xs)
    import zarr

    if (kind := special_file(annotation_uri)) is not None:
        raise ImageError(f"{annotation_uri}: not a regular file ({kind}); not opened")
    store = tifffile.imread(annotation_uri, aszarr=True, level=0)
    try:
        ann = zarr.open(store, mode="r")
        if ann.ndim != 2:  # ingest refuses these; an annotation is not fingerprinted, so one may change after
            raise ImageError(f"{annotation_uri}: annotation has shape {tuple(ann.shape)}; a label image is one "
                             "channel (2-D)")
        scale = width / ann.shape[1]
        r = np.minimum((ys / scale).astype(int), ann.shape[0] - 1)
        c = np.minimum((xs / scale).astype(int), ann.shape[1] - 1)
        values = ann.get_coordinate_selection((r, c))
    finally:
        store.close()
    return [area_index_of.get(int(v) - 1) if v > 0 else None for v in values]
