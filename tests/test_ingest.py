"""Ingest on real synthetic BigTIFFs, real Delta tables, real Spark: idempotence, updates, SQL (bad input:
tests/reliability)."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tifffile

from cytolake.atlas.classes import classes_of
from cytolake.atlas.pmaps import Atlas
from cytolake.atlas.registered import AreasOutdated, area_labels, area_rows, registered_areas
from cytolake.engines.sql import query, run_duckdb
from cytolake.export.compute import label_tables
from cytolake.io.images import write_pyramid_tiff
from cytolake.lake import Lake
from cytolake.lake.history import snapshots
from cytolake.schemas import schema

from conftest import ingest, sections, settings_at, versions


def snapshot(lake: Lake, table: str) -> pa.Table:
    """The table's rows in key order (Arrow: the 1M-row pmaps compare in well under a second)."""
    return lake.read(table).sort_by([(k, "ascending") for k in schema(table).key])


def test_ingest_registers_everything_and_is_idempotent(cfg, spark, atlas_nifti):
    s1 = ingest(cfg, spark)
    assert s1.atlas_registered and s1.failed_sections == 0 and s1.failed_brains == 0
    lake = Lake(cfg.paths.lake)
    areas = lake.read("areas").to_pylist()
    assert len(areas) == 103 and [a["area_index"] for a in areas] == list(range(103))
    assert not any(a["name"].startswith(("WM_", "GM_")) for a in areas)
    # pmaps: every non-zero voxel of the registered areas' maps, scaled, checked against nibabel's read
    atlas = Atlas(cfg.atlas)
    raw = atlas_nifti[0][..., [a["area_id"] for a in areas]]
    pm = lake.read("pmaps")
    assert pm.num_rows == np.count_nonzero(raw) > 1_000_000 and pa.compute.min(pm["probability"]).as_py() > 0
    assert pa.compute.sum(pm["probability"]).as_py() == pytest.approx(raw.sum(dtype=np.float64) * atlas.scale, rel=1e-6)
    assert pa.compute.max(pm["probability"]).as_py() == pytest.approx(raw.max() * atlas.scale, rel=1e-6)
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
        assert snapshot(lake, t).equals(before), t


def test_areas_label_is_the_name_the_report_and_the_lookup_tables_print(atlas_lake, tmp_path):
    """One name per area: `areas.label` is the atlas file's own name for the map (less the grey-matter prefix),
    and what the report (its classes, hemispheres apart), the FreeSurfer and FSLeyes lookup tables and the
    section map's legend print for that area_index."""
    lake = Lake(atlas_lake)
    areas = lake.read("areas").sort_by("area_index").to_pylist()
    labels = [a["label"] for a in areas]
    atlas = Atlas(settings_at(tmp_path).atlas)
    with open(atlas.labels_path, newline="") as f:
        raw = {int(r["index"]): r["name"] for r in csv.DictReader(f)}
    assert labels == [raw[a["area_id"]].removeprefix("GM_") for a in areas] == [a.label for a in atlas.areas]
    by_label = {a["label"]: a for a in areas}
    assert (by_label["Hippocampus_cornu_ammonis_L"]["name"], by_label["Hippocampus_cornu_ammonis_L"]["hemisphere"]) \
        == ("Hippocampus_cornu_ammonis", "L")
    assert {a["label"] for a in areas if a["hemisphere"] == "B"} == {"Mamillary_body"}  # no suffix for both
    assert len(set(labels)) == len(labels)

    label_tables(lake, tmp_path, k=2)
    freesurfer = {int(p[0]): p[1] for p in (line.split() for line in
                                            (tmp_path / "areas_FreeSurferColorLUT.txt").read_text().splitlines()[1:])}
    fsl = {int(p[0]): p[4] for p in (line.split(maxsplit=4) for line in (tmp_path / "areas.lut").read_text().splitlines())}
    assert [freesurfer[i + 1] for i in range(len(areas))] == labels == [fsl[i + 1] for i in range(len(areas))]
    assert list(classes_of(area_rows(lake), merge=False).names) == labels  # the report's names, left and right apart
    assert area_labels(lake) == labels  # the section map's legend


def test_an_areas_table_from_before_label_is_refused_until_ingest_rewrites_it_alone(atlas_lake, spark, tmp_path):
    """A lake ingested before `areas` had `label`: every reader of `areas` stops with an error naming the table
    and ingest, and SQL leaves the table out saying why; ingest rewrites `areas` alone (its pmaps are current)
    with the new schema, and the next ingest commits nothing."""
    from deltalake import write_deltalake

    cfg = settings_at(tmp_path)
    (tmp_path / "landing").mkdir()
    shutil.copytree(atlas_lake, cfg.paths.lake)
    lake = Lake(cfg.paths.lake)
    current = snapshot(lake, "areas")
    shutil.rmtree(lake.path("areas"))
    write_deltalake(str(lake.path("areas")), current.drop_columns(["label"]))  # as an older cytolake wrote it
    assert lake.missing_columns("areas") == ["label"]

    with pytest.raises(AreasOutdated, match=r"table areas \(.*\) has no column label: .*run ingest again"):
        area_rows(lake)  # train, the GNN's graphs, probe, evaluate
    with pytest.raises(AreasOutdated):
        registered_areas(lake, Atlas(cfg.atlas))  # tile, build_graph
    with pytest.raises(AreasOutdated):
        label_tables(lake, tmp_path, k=2)  # export, section-map
    with pytest.raises(RuntimeError, match=r"table areas is damaged and left out: its schema is out of date: written before column\(s\) label"):
        query(lake, "SELECT name FROM areas")

    pmaps_version = lake.version("pmaps")
    assert ingest(cfg, spark).atlas_registered
    assert lake.version("pmaps") == pmaps_version and lake.missing_columns("areas") == []
    assert snapshot(lake, "areas").equals(current)
    assert query(lake, "SELECT label FROM areas ORDER BY area_index")["label"].to_pylist() == current["label"].to_pylist()
    old = run_duckdb(lake, "SELECT * FROM areas", snapshots=snapshots(lake, {"areas": 0})[0])  # `sql --version areas=0`
    assert old.columns == [c for c in schema("areas").names if c != "label"] and not old.damaged
    before = versions(cfg)
    assert not ingest(cfg, spark).atlas_registered and versions(cfg) == before


@pytest.mark.usefixtures("with_atlas")
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


@pytest.mark.usefixtures("with_atlas")
def test_sql_joins_sections_and_areas_and_is_read_only(cfg, spark):
    ingest(cfg, spark)
    lake = Lake(cfg.paths.lake)
    t = query(lake, "select s.brain_id, count(*) n, max(a.name) name from sections s "
                    "join areas a on a.area_index = s.section_id group by 1 order by 1")
    assert t["brain_id"].to_pylist() == ["B01", "B02"] and t["n"].to_pylist() == [3, 3]
    from cytolake.engines.sql import ReadOnlyError

    for bad in ["DROP TABLE areas", "DELETE FROM sections", "INSERT INTO areas VALUES (1)",
                "COPY sections TO 'x.csv'", "select 1; drop table areas"]:
        with pytest.raises(ReadOnlyError):
            query(lake, bad)
    with pytest.raises(Exception, match="disabled"):
        query(lake, "select * from read_csv('/etc/passwd')")
    assert lake.read("areas").num_rows == 103
