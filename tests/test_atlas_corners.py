"""Trilinear corners and sampling of the atlas grid (atlas.corners), pure numpy."""

from __future__ import annotations

import numpy as np

from cytolake.atlas.corners import CORNER_COLUMNS, corner_columns, sample_trilinear, trilinear_corners

# a rotated, anisotropic, shifted voxel grid, as an atlas affine may be
AFFINE = np.array([[0.0, -1.5, 0.0, 40.0], [2.0, 0.0, 0.0, -60.0], [0.0, 0.0, 1.0, -20.0], [0, 0, 0, 1]])


def _linear_volume(shape, coef, const):
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return (coef[0] * i + coef[1] * j + coef[2] * k + const)[..., None] * np.array([1.0, -2.0])


def test_sampling_reproduces_a_linear_field_inside_the_volume():
    shape, coef = (6, 7, 5), np.array([0.3, -1.1, 2.0])
    vol = _linear_volume(shape, coef, 5.0)
    rng = np.random.default_rng(0)
    ijk = rng.uniform(0, np.array(shape) - 1, (50, 3))
    mm = (np.c_[ijk, np.ones(50)] @ AFFINE.T)[:, :3]
    idx, w = trilinear_corners(mm, np.linalg.inv(AFFINE))
    assert idx.shape == (50, 8, 3) and w.shape == (50, 8)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    expected = (ijk @ coef + 5.0)[:, None] * np.array([1.0, -2.0])
    np.testing.assert_allclose(sample_trilinear(vol, idx, w), expected, atol=1e-9)


def test_corners_outside_the_volume_count_as_zero():
    vol = np.ones((4, 4, 4, 1))
    # half a voxel beyond the last index along i: half the weight lies outside
    mm = (np.array([[3.5, 1.0, 1.0, 1.0], [-3.0, 1.0, 1.0, 1.0]]) @ AFFINE.T)[:, :3]
    idx, w = trilinear_corners(mm, np.linalg.inv(AFFINE))
    np.testing.assert_allclose(sample_trilinear(vol, idx, w)[:, 0], [0.5, 0.0])


def test_corner_columns_are_eight_per_point_in_column_order():
    idx, w = trilinear_corners(np.array([[0.25, 0.5, 0.75]]), np.eye(4))
    cols = corner_columns(idx, w)
    assert tuple(cols) == CORNER_COLUMNS
    assert cols["ci"] == [[0, 0, 0, 0, 1, 1, 1, 1]] and cols["ck"] == [[0, 1, 0, 1, 0, 1, 0, 1]]
    assert cols["cw"][0][0] == 0.75 * 0.5 * 0.25 and cols["cw"][0][7] == 0.25 * 0.5 * 0.75
