"""Sections that passed ingest's checks and then tiled wrong, crashed tiling or hung: a pyramid whose levels are
4x apart (Aperio style), a NaN in a brain's displacement field, an RGB annotation, an image path that is a FIFO.

One landing holds all four, checked by `landing check`, ingested and tiled once for the module on a copy of the
session's atlas lake: each bad section is its own `error` naming the file, the job goes on, and the pyramid's
patches are the image's own pixels."""

import os
import shutil
import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile

from cytolake.ingest.job import run_ingest
from cytolake.ingest.landing import check_landing
from cytolake.io.images import LevelReader
from cytolake.io.warps import WarpError, load_warp
from cytolake.lake import Lake
from cytolake.tiling.geometry import patch_geometry
from cytolake.tiling.job import run_tile
from cytolake.tiling.patches import resample

from conftest import edit_manifest, quiet, sections, settings_at
from test_warp import set_warp, write_field


def block_mean(img: np.ndarray, f: int) -> np.ndarray:
    h, w = img.shape[0] // f * f, img.shape[1] // f * f
    return np.rint(img[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))).astype(np.uint8)


def write_4x_pyramid(path: Path, image: np.ndarray, spacing_um: float) -> None:
    """A tiled BigTIFF whose pyramid levels are 4x apart (as Aperio's 1x, 4x, 16x), spacing in every level's tags."""
    opts = dict(tile=(64, 64), compression="zlib", photometric="minisblack", resolutionunit="CENTIMETER")
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(image, subifds=2, resolution=(1e4 / spacing_um, 1e4 / spacing_um), **opts)
        for f in (4, 16):
            s = spacing_um * f
            tif.write(block_mean(image, f), subfiletype=1, resolution=(1e4 / s, 1e4 / s), **opts)


class Unblocker:
    """Opens a FIFO for writing and closes it again each time a reader opens it, so that a reader that should
    never have opened it sees an empty file instead of hanging the test."""

    def __init__(self, fifo: Path):
        self.fifo, self.done = fifo, False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done:
            os.close(os.open(self.fifo, os.O_WRONLY))  # blocks until a reader opens the FIFO

    def stop(self):
        self.done = True
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets a waiting open return
        self.thread.join(10)
        os.close(fd)


@pytest.fixture(scope="module")
def bad(tmp_path_factory, synth_landing, atlas_lake, spark):
    base = tmp_path_factory.mktemp("badsections")
    landing = base / "landing"
    shutil.copytree(synth_landing, landing)
    shutil.copytree(atlas_lake, base / "lake")
    cfg = settings_at(base)
    b1, b2 = landing / "B01", landing / "B02"
    # B01 section 1: the same pixels in a pyramid with levels 4x apart
    img1 = b1 / "images" / "section_0001.tif"
    original = tifffile.imread(img1)
    write_4x_pyramid(img1, original, cfg.synth.spacing_um)
    # B01 section 2: its annotation saved as RGB
    ann = b1 / "annotations" / "rgb_0002.tif"
    h, w = tifffile.imread(b1 / "images" / "section_0002.tif").shape
    tifffile.imwrite(ann, np.full((h // 2, w // 2, 3), 7, np.uint8), photometric="rgb")
    edit_manifest(b1 / "manifest.csv", 2, annotation_path="annotations/rgb_0002.tif")
    # B01 section 3: its image path a FIFO
    fifo = b1 / "images" / "section_0003.tif"
    fifo.unlink()
    os.mkfifo(fifo)
    # B02: an ITK displacement field with one NaN, far from where its sections lie
    field = b2 / "warps" / "to_mni.nii"
    write_field(field, "itk", 2.0)
    img = nib.load(field)
    d = np.asarray(img.dataobj).copy()
    d[1, 1, 1, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(d, img.affine, img.header), field)
    set_warp(b2 / "manifest.csv", "warps/to_mni.nii")
    unblock = Unblocker(fifo)
    try:
        problems, _ = check_landing(cfg)
        ingested = run_ingest(cfg, spark, log=quiet)
        try:
            tiled = run_tile(cfg, spark, log=quiet)
        except Exception as e:  # what a crash of the whole job looks like here
            tiled = e
    finally:
        unblock.stop()
    return {"cfg": cfg, "original": original, "problems": [str(p) for p in problems], "ingested": ingested,
            "tiled": tiled, "sections": sections(cfg), "fifo": fifo, "ann": ann, "field": field}


def test_every_bad_section_is_its_own_error_and_tiling_goes_on(bad):
    secs = bad["sections"]
    assert len(secs) == 6
    assert {k for k, r in secs.items() if r["status"] == "ok"} == {("B01", 1)}
    assert not isinstance(bad["tiled"], Exception), repr(bad["tiled"])
    assert bad["tiled"].tiled.get(("B01", 1), 0) > 0


def test_a_pyramid_with_levels_4x_apart_tiles_the_images_own_pixels(bad):
    """Level k was taken to be 2**k coarser: with levels 4x apart the patches were cut from the wrong place at
    the wrong scale. Each patch must be its window of level 0, brought to patch size."""
    cfg, original = bad["cfg"], bad["original"]
    rows = [r for r in Lake(cfg.paths.lake).read("patches").to_pylist() if (r["brain_id"], r["section_id"]) == ("B01", 1)]
    assert len(rows) > 10
    win = int(round(cfg.tiling.patch_px * cfg.tiling.spacing_um / cfg.synth.spacing_um))
    for r in rows:
        x0, y0 = int(np.floor(r["x"] - win / 2)), int(np.floor(r["y"] - win / 2))
        ref = np.full((win, win), 255, np.uint8)
        part = original[max(y0, 0):y0 + win, max(x0, 0):x0 + win]
        ref[max(-y0, 0):max(-y0, 0) + part.shape[0], max(-x0, 0):max(-x0, 0) + part.shape[1]] = part
        patch = np.frombuffer(r["image"], np.uint8).reshape(r["height"], r["width"])
        assert np.array_equal(patch, resample(ref, r["height"])), (r["x"], r["y"])


def test_levels_4x_apart_are_not_read_as_2x_levels(bad):
    from cytolake.io.images import read_info
    from cytolake.io.pyramid import halving_levels

    info = read_info(bad["cfg"].paths.landing / "B01" / "images" / "section_0001.tif")
    assert info.levels == 3 and halving_levels(info.level_shapes) == 1
    assert patch_geometry(bad["cfg"].tiling, 200.0, halving_levels(info.level_shapes)).level == 0
    with LevelReader(bad["cfg"].paths.landing / "B01" / "images" / "section_0001.tif", 1) as lr:
        assert lr.shape == info.level_shapes[1]


def test_an_rgb_annotation_is_that_sections_error_at_landing_check_and_ingest(bad):
    err = bad["sections"][("B01", 2)]["error"]
    assert bad["sections"][("B01", 2)]["status"] == "error"
    assert str(bad["ann"]) in err and "3 channels" in err, err
    assert any("rgb_0002.tif" in p and "3 channels" in p for p in bad["problems"]), bad["problems"]


def test_an_rgb_label_image_met_by_tiling_is_an_image_error_naming_it(bad):
    """An annotation's content is not fingerprinted: one replaced after ingest reaches tiling, which must make it
    that section's error (an ImageError), not an IndexError that stops every brain."""
    from cytolake.io.images import ImageError
    from cytolake.io.labels import labels_at

    with pytest.raises(ImageError, match="rgb_0002.tif"):
        labels_at(str(bad["ann"]), np.array([10]), np.array([10]), bad["original"].shape[1], {6: 0})


def test_an_image_that_is_a_fifo_is_refused_without_opening_it(bad):
    r = bad["sections"][("B01", 3)]
    assert r["status"] == "error" and str(bad["fifo"]) in r["error"] and "not a regular file" in r["error"], r["error"]
    assert any("section 3" in p and "not a regular file" in p for p in bad["problems"]), bad["problems"]


def test_a_nan_in_a_displacement_field_is_an_error_naming_the_file(bad, tmp_path):
    errs = [r["error"] for k, r in bad["sections"].items() if k[0] == "B02"]
    assert len(errs) == 3 and all(e and str(bad["field"]) in e and "NaN" in e for e in errs), errs
    assert sum("to_mni.nii" in p and "NaN" in p for p in bad["problems"]) == 1, bad["problems"]  # said once
    write_field(tmp_path / "fsl.nii.gz", "fsl", 1.0)  # the FSL form too
    img = nib.load(tmp_path / "fsl.nii.gz")
    d = np.asarray(img.dataobj).copy()
    d[30, 40, 30, 2] = np.inf
    nib.save(nib.Nifti1Image(d, img.affine, img.header), tmp_path / "fsl.nii.gz")
    with pytest.raises(WarpError, match=r"fsl\.nii\.gz.*(NaN|infinite)"):
        load_warp(tmp_path / "fsl.nii.gz", "fsl")
