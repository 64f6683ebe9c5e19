"""A section removed from its brain's manifest leaves `sections` on the next ingest and its patches on the next
tile run; the brain's other sections and patches stay as they were. (The later tables follow in reprocess:
`test_reprocess.py::test_a_section_removed_from_a_manifest_leaves_every_table`.)"""

import csv

import pytest

from cytolake.lake import Lake
from cytolake.tiling.job import run_tile

from conftest import ingest, sections


def drop_from_manifest(path, section_id: int) -> None:
    rows = [r for r in csv.DictReader(open(path, newline="")) if int(r["section_id"]) != section_id]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.mark.slow  # a chain: ingest and tile, change the landing, ingest and tile again
@pytest.mark.usefixtures("with_atlas")
def test_a_removed_section_leaves_sections_and_patches(cfg, spark, landing):
    ingest(cfg, spark)
    run_tile(cfg, spark, log=lambda *a: None)
    lake = Lake(cfg.paths.lake)
    before = {(r["brain_id"], r["section_id"], r["patch_id"]) for r in lake.read("patches", ["brain_id", "section_id", "patch_id"]).to_pylist()}
    assert any(k[:2] == ("B01", 3) for k in before)
    old_secs = sections(cfg)

    drop_from_manifest(landing / "B01" / "manifest.csv", 3)
    s = ingest(cfg, spark)
    secs = sections(cfg)
    assert set(secs) == set(old_secs) - {("B01", 3)}
    assert all(secs[k] == old_secs[k] for k in secs)  # the others untouched
    assert s.brains["B01"]["changed"] and s.brains["B01"]["n_ok"] == 2
    brains = {r["brain_id"]: r for r in lake.read("brains").to_pylist()}
    assert brains["B01"]["n_sections"] == 2

    run_tile(cfg, spark, log=lambda *a: None)
    after = {(r["brain_id"], r["section_id"], r["patch_id"]) for r in lake.read("patches", ["brain_id", "section_id", "patch_id"]).to_pylist()}
    assert after == {k for k in before if k[:2] != ("B01", 3)}

    v = {t: lake.version(t) for t in ("sections", "brains", "patches")}
    ingest(cfg, spark)
    run_tile(cfg, spark, log=lambda *a: None)
    assert {t: lake.version(t) for t in v} == v  # a rerun changes nothing
