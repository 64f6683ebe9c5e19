"""Nonlinear registration: a brain delivered with a displacement field from its own space to MNI.

The field is an analytic function written by nibabel in each format's documented convention (ITK: 5-D,
LPS, so x and y negated; FSL: 4-D, x negated), read back by nitransforms in ingest and tiling. Every
check compares with the analytic warp evaluated directly, so a wrong direction (d evaluated at the MNI
point instead of the brain point), a wrong sign or a wrong axis fails it.
"""

import csv
import shutil

import nibabel as nib
import numpy as np
import pyarrow as pa
import pytest

from cytolake.atlas.pmaps import Atlas
from cytolake.graph.build import AtlasFrame, brain_graph
from cytolake.ingest.job import run_ingest
from cytolake.io.warps import WarpError, load_warp, map_points
from cytolake.lake import Lake
from cytolake.tiling.job import run_tile

from conftest import expected_pmaps, settings_at

quiet = dict(log=lambda *a: None)
GRID = np.array([[3.0, 0, 0, -100.0], [0, 3.0, 0, -136.0], [0, 0, 3.0, -82.0], [0, 0, 0, 1]])
SHAPE = (68, 80, 68)  # covers the MNI volume with a 10 mm margin


def displacement(x: np.ndarray, amp: float) -> np.ndarray:
    """The analytic warp's displacement (mm, RAS) at brain-space points x (..., 3)."""
    return amp * np.stack([np.sin(x[..., 1] / 30.0), 0.75 * np.cos(x[..., 2] / 25.0) + 0.005 * x[..., 0],
                           0.5 * np.sin(x[..., 0] / 40.0)], -1)


def write_field(path, fmt: str, amp: float) -> None:
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1)
    d = displacement(ijk @ GRID[:3, :3].T + GRID[:3, 3], amp)
    if fmt == "itk":  # LPS vectors in a 5-D vector image
        d[..., :2] *= -1
        img = nib.Nifti1Image(d[:, :, :, None, :], GRID)
        img.header.set_intent("vector")
    else:  # FSL relative displacements, x flipped for an image with a positive determinant
        d[..., 0] *= -1
        img = nib.Nifti1Image(d, GRID)
    path.parent.mkdir(exist_ok=True)
    nib.save(img, path)


def set_warp(manifest, warp_path: str, warp_format: str = "") -> None:
    rows = list(csv.DictReader(open(manifest, newline="")))
    for r in rows:
        r.update(warp_path=warp_path, warp_format=warp_format)
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _warp_and_tile(cfg, spark):
    """B01 warped by an ITK field (amplitude 3 mm), B02 by an FSL one (2 mm); ingested and tiled."""
    landing = cfg.paths.landing
    write_field(landing / "B01" / "warps" / "to_mni.nii", "itk", 3.0)  # format inferred from the 5-D field
    write_field(landing / "B02" / "warps" / "to_mni_fsl.nii.gz", "fsl", 2.0)
    set_warp(landing / "B01" / "manifest.csv", "warps/to_mni.nii")
    set_warp(landing / "B02" / "manifest.csv", "warps/to_mni_fsl.nii.gz", "fsl")
    run_ingest(cfg, spark, **quiet)
    return cfg, run_tile(cfg, spark, **quiet)


@pytest.fixture(scope="module")
def warped(tmp_path_factory, synth_landing, atlas_lake, spark):
    """The warped lake shared by the tests that only read it."""
    base = tmp_path_factory.mktemp("warped")
    shutil.copytree(synth_landing, base / "landing")
    shutil.copytree(atlas_lake, base / "lake")
    return _warp_and_tile(settings_at(base), spark)


@pytest.fixture
def warped_own(spark, with_atlas):
    """A warped lake (and landing) of this test's own, which it may change."""
    return _warp_and_tile(with_atlas, spark)


def _check_patches(cfg, atlas_nifti, amps: dict[str, float], n: int = 40) -> None:
    lake = Lake(cfg.paths.lake)
    secs = {(s["brain_id"], s["section_id"]): s for s in lake.read("sections").to_pylist()}
    raw, inv = atlas_nifti
    area_ids = [a["area_id"] for a in lake.read("areas").to_pylist()]
    rows = lake.read("patches").to_pylist()
    rng = np.random.default_rng(3)
    for brain, amp in amps.items():
        mine = [r for r in rows if r["brain_id"] == brain]
        assert len(mine) > 20
        sample = [mine[i] for i in rng.choice(len(mine), n, replace=False)]
        refs = []
        for r in sample:
            brain_xyz = (np.asarray(secs[(brain, r["section_id"])]["transform"]).reshape(4, 4) @ [r["x"], r["y"], 0, 1])[:3]
            refs.append(brain_xyz + displacement(brain_xyz, amp))
            assert np.allclose(r["ref_xyz"], refs[-1], atol=1e-4), (brain, r["ref_xyz"], refs[-1])
        assert np.allclose([r["pmap"] for r in sample], expected_pmaps(raw, inv, area_ids, refs), atol=1e-5)


def test_pmap_vectors_follow_the_warp_in_itk_and_fsl_formats(warped, atlas_nifti):
    cfg, summary = warped
    assert not summary.failed
    secs = Lake(cfg.paths.lake).read("sections").to_pylist()
    assert {s["status"] for s in secs} == {"ok"} and len(secs) == 6
    assert {(s["brain_id"], s["warp_format"]) for s in secs} == {("B01", "itk"), ("B02", "fsl")}
    assert all(s["warp_hash"] and s["warp_uri"].endswith((".nii", ".nii.gz")) for s in secs)
    _check_patches(cfg, atlas_nifti, {"B01": 3.0, "B02": 2.0})


@pytest.mark.slow  # a chain: ingest and tile with warps, a warp file replaced, ingest and tile again
def test_a_new_warp_retiles_that_brain_and_nothing_else(warped_own, spark, landing, atlas_nifti):
    cfg, _ = warped_own
    lake = Lake(cfg.paths.lake)

    def files(brain):
        adds = pa.table(lake.table("patches").get_add_actions(flatten=True)).to_pylist()
        return sorted(a["path"] for a in adds if a["partition.brain_id"] == brain)

    b02_files, b02_sections = files("B02"), [s for s in lake.read("sections").to_pylist() if s["brain_id"] == "B02"]
    write_field(landing / "B01" / "warps" / "to_mni.nii", "itk", -2.5)  # same name, other content
    run_ingest(cfg, spark, **quiet)
    summary = run_tile(cfg, spark, **quiet)
    assert summary.committed_brains == ["B01"] and len(summary.tiled) == 3
    assert files("B02") == b02_files
    assert [s for s in lake.read("sections").to_pylist() if s["brain_id"] == "B02"] == b02_sections
    _check_patches(cfg, atlas_nifti, {"B01": -2.5}, n=20)
    v = lake.version("patches"), lake.version("sections")
    run_ingest(cfg, spark, **quiet)
    assert run_tile(cfg, spark, **quiet).version is None and (lake.version("patches"), lake.version("sections")) == v


def test_graph_nodes_and_mesh_are_reconstructed_in_brain_space_then_warped(warped):
    """The surface is built where the sections are planar (the brain's space), then its vertices and the
    nodes' image locations go through the warp: the same reconstruction as without a warp, displaced."""
    cfg, _ = warped
    lake = Lake(cfg.paths.lake)
    atlas = Atlas(cfg.atlas)
    areas = lake.read("areas").to_pylist()
    secs = [{**s, "split": "train"} for s in lake.read("sections").to_pylist() if s["brain_id"] == "B01"]
    args = (cfg.graph, cfg.tiling, AtlasFrame({a["area_id"]: a["area_index"] for a in areas},
                                              np.linalg.inv(atlas.affine), *atlas.bounds_mm()))
    warped_g = brain_graph("B01", secs, *args)
    plain = brain_graph("B01", [{**s, "warp_uri": None} for s in secs], *args)
    assert np.allclose(warped_g.mesh_vertices, plain.mesh_vertices + displacement(plain.mesh_vertices, 3.0), atol=1e-4)
    assert np.array_equal(warped_g.mesh_faces, plain.mesh_faces) and len(warped_g.nodes) > 20
    for a, b in zip(warped_g.nodes, plain.nodes):
        assert np.allclose(a["ref_xyz"], np.asarray(b["ref_xyz"]) + displacement(np.asarray(b["ref_xyz"]), 3.0), atol=1e-4)
        assert np.allclose(a["vertex_xyz"], warped_g.mesh_vertices[warped_g.node_vertex[a["node_id"]]])


def test_points_outside_the_field_and_bad_warp_files_are_errors(tmp_path):
    write_field(tmp_path / "w.nii", "itk", 1.0)
    w = load_warp(tmp_path / "w.nii")
    assert map_points(w, np.zeros((1, 3))).shape == (1, 3)
    with pytest.raises(WarpError, match="outside the displacement field's grid"):
        map_points(w, np.array([[0.0, 0.0, 0.0], [500.0, 0.0, 0.0]]))
    with pytest.raises(WarpError, match="warp file not found"):
        load_warp(tmp_path / "nope.nii", "itk")
    (tmp_path / "bad.nii").write_bytes(b"not a nifti")
    with pytest.raises(WarpError, match="bad.nii"):
        load_warp(tmp_path / "bad.nii")
    with pytest.raises(WarpError, match="warp_format 'spm'"):
        load_warp(tmp_path / "w.nii", "spm")
