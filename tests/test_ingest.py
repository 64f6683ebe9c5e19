"""Ingest on real synthetic BigTIFFs, real Delta tables, real Spark: idempotence, updates, bad input."""

import csv
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tifffile

from cytolake.ingest.job import run_ingest
from cytolake.io.images import write_pyramid_tiff
from cytolake.lake import Lake
from cytolake.lake.sql import query
from cytolake.schemas import schema


def ingest(cfg, spark):
    return run_ingest(cfg, spark, log=lambda *a: None)


def sections(cfg) -> dict:
    return {(r["brain_id"], r["section_id"]): r for r in Lake(cfg.paths.lake).read("sections").to_pylist()}


def versions(cfg) -> dict:
    lake = Lake(cfg.paths.lake)
    return {s["table"]: s["version"] for s in lake.stats()}


def snapshot(lake: Lake, table: str) -> list[dict]:
    key = schema(table).key
    return sorted(lake.read(table).to_pylist(), key=lambda r: tuple(r[k] for k in key))


def edit_manifest(path: Path, section_id: int, **changes) -> None:
    rows = list(csv.DictReader(open(path, newline="")))
    for r in rows:
        if int(r["section_id"]) == section_id:
            r.update({k: str(v) for k, v in changes.items()})
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_ingest_registers_everything_and_is_idempotent(cfg, spark):
    s1 = ingest(cfg, spark)
    assert s1.atlas_registered and s1.failed_sections == 0 and s1.failed_brains == 0
    lake = Lake(cfg.paths.lake)
    areas = lake.read("areas").to_pylist()
    assert len(areas) == 103 and [a["area_index"] for a in areas] == list(range(103))
    assert not any(a["name"].startswith(("WM_", "GM_")) for a in areas)
    pm = lake.read("pmaps")
    assert pm.num_rows > 1_000_000 and pa.compute.min(pm["probability"]).as_py() > 0
    assert pa.compute.max(pm["probability"]).as_py() <= 1.0
    secs = sections(cfg)
    assert len(secs) == 6 and {r["status"] for r in secs.values()} == {"ok"}
    r = secs[("B01", 1)]
    assert r["levels"] >= 2 and r["width"] == 700 and r["spacing_um"] == 200.0 and len(r["transform"]) == 16
    assert len(r["content_hash"]) == 32

    tables_before = {t: snapshot(lake, t) for t in ("sections", "brains", "areas", "pmaps")}
    v_before = versions(cfg)
    s2 = ingest(cfg, spark)
    assert not s2.atlas_registered and not any(b["changed"] for b in s2.brains.values())
    assert versions(cfg) == v_before
    for t, before in tables_before.items():
        assert snapshot(lake, t) == before, t


def test_changed_section_is_updated_in_place(cfg, spark):
    ingest(cfg, spark)
    before = sections(cfg)
    v = versions(cfg)["sections"]
    img_path = Path(before[("B02", 2)]["image_uri"])
    img = tifffile.imread(img_path)
    write_pyramid_tiff(img_path, 255 - img, 200.0, tile=128, min_px=128)
    ingest(cfg, spark)
    after = sections(cfg)
    assert versions(cfg)["sections"] == v + 1 and len(after) == 6
    assert after[("B02", 2)]["content_hash"] != before[("B02", 2)]["content_hash"]
    for k in before:
        if k != ("B02", 2):
            assert after[k] == before[k]


def test_bad_sections_get_status_and_message_and_the_rest_goes_on(cfg, spark, landing):
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
    ingest(cfg, spark)
    secs = sections(cfg)
    keys = sorted(secs)
    assert len(keys) == len(set(keys)) == 6  # updated in place, never duplicated
    n = query(Lake(cfg.paths.lake), "select count(*) n, count(distinct brain_id || section_id) d from sections")
    assert n["n"][0].as_py() == n["d"][0].as_py() == 6


def test_sql_joins_sections_and_areas_and_is_read_only(cfg, spark):
    ingest(cfg, spark)
    lake = Lake(cfg.paths.lake)
    t = query(lake, "select s.brain_id, count(*) n, max(a.name) name from sections s "
                    "join areas a on a.area_index = s.section_id group by 1 order by 1")
    assert t["brain_id"].to_pylist() == ["B01", "B02"] and t["n"].to_pylist() == [3, 3]
    from cytolake.lake.sql import ReadOnlyError

    for bad in ["DROP TABLE areas", "DELETE FROM sections", "INSERT INTO areas VALUES (1)",
                "COPY sections TO 'x.csv'", "select 1; drop table areas"]:
        with pytest.raises(ReadOnlyError):
            query(lake, bad)
    with pytest.raises(Exception, match="disabled"):
        query(lake, "select * from read_csv('/etc/passwd')")
    assert lake.read("areas").num_rows == 103
