"""Bad input, each with its clear error, on real files and real tables; the lake otherwise intact."""

import csv

import nibabel as nib
import numpy as np
import pytest
import tifffile

from cytolake.atlas.pmaps import AtlasError
from cytolake.engines.sql import query
from cytolake.io.images import write_pyramid_tiff
from cytolake.lake import Lake

from conftest import edit_manifest, ingest, sections, versions


@pytest.mark.usefixtures("with_atlas")
def test_bad_sections_get_status_and_message_and_the_rest_goes_on(cfg, spark, landing):
    ingest(cfg, spark)
    good, before = sections(cfg), versions(cfg)
    b1 = landing / "B01"
    # truncated image
    img1 = b1 / "images" / "section_0001.tif"
    data = img1.read_bytes()
    img1.write_bytes(data[: len(data) // 2])
    # spacing in the manifest disagrees with the header
    edit_manifest(b1 / "manifest.csv", 2, spacing_um=1.0)
    # affine that maps the section far outside the reference volume
    edit_manifest(b1 / "manifest.csv", 3, a13=900.0)
    b2 = landing / "B02"
    # image of the wrong dtype
    write_pyramid_tiff(b2 / "images" / "section_0001.tif", np.zeros((300, 400), np.uint16), 200.0, 128, 128)
    # missing file, and a path escaping the landing folder
    edit_manifest(b2 / "manifest.csv", 2, image_path="images/nope.tif")
    edit_manifest(b2 / "manifest.csv", 3, image_path="../../../../etc/passwd")
    s = ingest(cfg, spark)
    secs = sections(cfg)
    err = {k: r["error"] for k, r in secs.items() if r["status"] == "error"}
    assert set(err) == {("B01", 1), ("B01", 2), ("B01", 3), ("B02", 1), ("B02", 2), ("B02", 3)}
    assert "section_0001.tif" in err[("B01", 1)] and "truncated" in err[("B01", 1)]
    assert "spacing mismatch" in err[("B01", 2)] and "1 um/px" in err[("B01", 2)] and "200 um/px" in err[("B01", 2)]
    assert "outside the reference volume" in err[("B01", 3)]
    assert "uint16" in err[("B02", 1)] and "section_0001.tif" in err[("B02", 1)]
    assert "nope.tif" in err[("B02", 2)] and "not found" in err[("B02", 2)]
    assert "escapes the landing folder" in err[("B02", 3)]
    assert s.failed_sections == 6 and s.brains["B01"]["n_error"] == 3
    assert len(secs) == 6 and all(secs[k] == good[k] for k in secs if k not in err)  # the lake otherwise intact
    after = versions(cfg)
    assert after["areas"] == before["areas"] and after["pmaps"] == before["pmaps"]


@pytest.mark.usefixtures("with_atlas")
def test_good_sections_survive_next_to_bad_ones_and_recover(cfg, spark, landing):
    ingest(cfg, spark)
    img = landing / "B01" / "images" / "section_0002.tif"
    good = img.read_bytes()
    img.write_bytes(good[:1000])
    ingest(cfg, spark)
    secs = sections(cfg)
    assert secs[("B01", 2)]["status"] == "error" and secs[("B01", 1)]["status"] == "ok" and len(secs) == 6
    img.write_bytes(good)
    ingest(cfg, spark)
    secs = sections(cfg)
    assert {r["status"] for r in secs.values()} == {"ok"} and len(secs) == 6


@pytest.mark.usefixtures("with_atlas")
def test_malformed_manifest_is_a_brain_error(cfg, spark, landing):
    m = landing / "B02" / "manifest.csv"
    m.write_text(m.read_text().splitlines()[0] + '\nB02,1,"images/section_0001.tif,200\n')
    s = ingest(cfg, spark)
    assert s.brains["B02"]["status"] == "error" and "manifest.csv" in s.brains["B02"]["error"]
    assert s.brains["B01"]["status"] == "ok"
    secs = sections(cfg)
    assert {k[0] for k in secs} == {"B01"}
    brains = {r["brain_id"]: r for r in Lake(cfg.paths.lake).read("brains").to_pylist()}
    assert brains["B02"]["status"] == "error" and "malformed" in brains["B02"]["error"]


@pytest.mark.usefixtures("with_atlas")
def test_same_brain_delivered_again_with_new_content_is_an_update(cfg, spark, landing):
    ingest(cfg, spark)
    m = landing / "B01" / "manifest.csv"
    rows = list(csv.DictReader(open(m, newline="")))
    rows = rows[:2]  # the brain comes again, one section fewer and one re-scanned image
    img = landing / "B01" / "images" / "section_0001.tif"
    write_pyramid_tiff(img, np.flipud(tifffile.imread(img)).copy(), 200.0, 128, 128)
    with open(m, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    before = sections(cfg)
    ingest(cfg, spark)
    secs = sections(cfg)
    keys = sorted(secs)
    assert len(keys) == len(set(keys)) == 5 and ("B01", 3) not in secs  # updated in place, the removed one dropped
    assert secs[("B01", 1)]["content_hash"] != before[("B01", 1)]["content_hash"]
    assert secs[("B01", 2)] == before[("B01", 2)]
    n = query(Lake(cfg.paths.lake), "select count(*) n, count(distinct brain_id || section_id) d from sections")
    assert n["n"][0].as_py() == n["d"][0].as_py() == 5


@pytest.mark.usefixtures("with_atlas")
def test_nan_in_a_pmap_is_refused_naming_the_file_and_the_map(cfg, spark, tmp_path):
    ingest(cfg, spark)
    before = versions(cfg)
    pmaps = Lake(cfg.paths.lake).path("pmaps")
    files = set(pmaps.rglob("*.parquet"))
    maps = np.zeros((12, 14, 12, 3), np.float32)
    maps[2:8, 3:9, 2:8, :] = 0.4
    maps[5, 5, 5, 1] = np.nan
    nib.save(nib.Nifti1Image(maps, np.diag([4.0, 4.0, 4.0, 1.0])), tmp_path / "atlas_nan.nii.gz")
    (tmp_path / "labels.csv").write_text("index,name\n0,GM_A_L\n1,GM_B_R\n2,GM_C_L\n")
    bad = cfg.model_copy(update={"atlas": cfg.atlas.model_copy(update={
        "name": "nan", "maps": tmp_path / "atlas_nan.nii.gz", "labels": tmp_path / "labels.csv", "probability_scale": 1.0})})
    with pytest.raises(AtlasError, match=r"atlas_nan\.nii\.gz: map 1 \(B_R\) contains NaN"):
        ingest(bad, spark)
    assert versions(cfg) == before
    assert set(pmaps.rglob("*.parquet")) == files  # area 0's rows were written before map 1 failed: removed
    assert Lake(cfg.paths.lake).read("areas").num_rows == 103


def test_absolute_and_symlinked_paths_outside_landing_are_refused(landing, tmp_path):
    from cytolake.io.manifest import read_manifest

    outside = tmp_path / "elsewhere.tif"
    outside.write_bytes(b"not yours")
    (landing / "B01" / "images" / "link.tif").symlink_to(outside)
    m = landing / "B01" / "manifest.csv"
    edit_manifest(m, 1, image_path=str(outside))
    edit_manifest(m, 2, image_path="images/link.tif")
    edit_manifest(m, 3, annotation_path="/etc/passwd")
    err = {e.section_id: e.error for e in read_manifest(m, landing)}
    for sid, raw in ((1, str(outside)), (2, "images/link.tif"), (3, "/etc/passwd")):
        assert err[sid] and "escapes the landing folder" in err[sid] and raw in err[sid] and "manifest.csv" in err[sid]
