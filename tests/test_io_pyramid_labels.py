"""Pyramid level choice (io.pyramid) and the label-image encoding (io.labels), on real label TIFFs."""

from __future__ import annotations

import numpy as np

from cytolake.io.images import write_pyramid_tiff
from cytolake.io.labels import label_values, labels_at
from cytolake.io.pyramid import coarsest_level, finest_level_within


def test_coarsest_level_is_the_last_level_not_coarser_than_the_target():
    for spacing, target, levels in [(0.5, 2.0, 8), (0.5, 1.99, 8), (0.5, 2.0, 2), (0.5, 0.3, 8), (0.25, 100.0, 4)]:
        brute = max(k for k in range(levels) if k == 0 or spacing * 2**k <= target)
        assert coarsest_level(spacing, target, levels) == brute
    assert coarsest_level(2.0, 16.0) == 3 and coarsest_level(2.0, 15.9) == 2  # unbounded: an averaging factor
    # a target computed as a level's spacing, a rounding error below it, still picks that level
    assert coarsest_level(0.37, 0.37 * 4 * (1 - 1e-12), 8) == 2


def test_finest_level_within_a_width():
    shapes = ((800, 1000), (400, 500), (200, 250))
    assert finest_level_within(shapes, 500) == 1
    assert finest_level_within(shapes, 5000) == 0
    assert finest_level_within(shapes, 100) == 2  # none that small: the coarsest


def test_label_image_round_trip(tmp_path):
    area_ids = np.array([7, 3, 12])  # area_index -> the volume index in the atlas file
    area = np.full((64, 80), -1)
    area[10:30, 5:40], area[40:60, 50:75], area[0:5, 0:5] = 0, 2, 1
    lab = label_values(area, area_ids).astype(np.uint16)
    assert lab[0, 79] == 0 and lab[20, 20] == 8 and lab[50, 60] == 13 and lab[2, 2] == 4
    uri = tmp_path / "labels.tif"
    write_pyramid_tiff(uri, lab, 4.0, tile=16, min_px=10**9)
    # a section 4x finer than its label image; area 3 (index 1) is not in the selection
    xs, ys = np.array([80, 200, 4, 316]), np.array([80, 200, 4, 4])
    assert labels_at(str(uri), xs, ys, 320, {7: 0, 12: 2}) == [0, 2, None, None]
    assert labels_at(None, xs, ys, 320, {7: 0}) == [None] * 4
