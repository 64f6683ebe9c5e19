"""Ingest on real synthetic BigTIFFs, real Delta tables, real Spark: idempotence, updates, SQL (bad input:
tests/reliability)."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tifffile

from cytolake.atlas.pmaps import Atlas
from cytolake.engines.sql import query
from cytolake.io.images import write_pyramid_tiff
from cytolake.lake import Lake
from cytolake.schemas import schema

from conftest import ingest, sections, versions


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
