"""The ingest job's incremental rules, on plans: Arrow tables in, work out, no Spark, no lake."""

from datetime import datetime, timezone

import pyarrow as pa

from cytolake.ingest.plan import changed_brains, changed_sections, counted_brains, plan_ingest
from cytolake.ingest.scan import LANDED
from cytolake.schemas import schema

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
T = [0.002, 0, 0, -4, 0, 0, 0.02, -20, 0, -0.002, 0, 4, 0, 0, 0, 1]


def section(b: str, s: int, **kw) -> dict:
    return {"brain_id": b, "section_id": s, "status": "ok", "error": None, "image_uri": f"/l/{b}/{s}.tif",
            "annotation_uri": None, "spacing_um": 2.0, "width": 100, "height": 80, "levels": 3, "channels": 1,
            "content_hash": f"h{b}{s}", "file_size": 1000 + s, "file_mtime_ns": 7, "ingested_at": NOW,
            "warp_uri": None, "warp_format": None, "warp_hash": None, "transform": T, **kw}


def landed_row(r: dict) -> dict:
    """What a scan of the landing finds for a registered section that did not change."""
    return {"brain_id": r["brain_id"], "section_id": r["section_id"], "image": r["image_uri"], "spacing_um": 2.0,
            "transform": T, "annotation": None, "error": None, "raw_image_path": r["image_uri"], "warp": r["warp_uri"],
            "warp_format": None, "line": None, "status": "ok", "file_size": r["file_size"],
            "file_mtime_ns": r["file_mtime_ns"], "warp_uri": r["warp_uri"], "warp_hash": r["warp_hash"]}


def brain(b: str, n: int, **kw) -> dict:
    return {"brain_id": b, "status": "ok", "error": None, "manifest_uri": f"/l/{b}/manifest.csv",
            "manifest_hash": f"m{b}", "n_sections": n, "n_ok": n, "n_error": 0, "ingested_at": NOW, **kw}


REGISTERED = [section(b, s) for b in ("B01", "B02") for s in (1, 2, 3)]
BRAINS = [brain("B01", 3), brain("B02", 3)]


def plan(registered=REGISTERED, brains=BRAINS, landed=None, landed_brains=None):
    landed = [landed_row(r) for r in REGISTERED] if landed is None else landed
    landed_brains = [{**b, "n_ok": 0, "n_error": 0} for b in BRAINS] if landed_brains is None else landed_brains
    return plan_ingest(schema("sections").table(registered), schema("brains").table(brains),
                       pa.Table.from_pylist(landed, schema=LANDED), schema("brains").table(landed_brains))


def keys(t: pa.Table) -> set:
    return set(zip(t["brain_id"].to_pylist(), t["section_id"].to_pylist()))


def with_(rows: list[dict], key: tuple, **changes) -> list[dict]:
    return [{**r, **changes} if (r["brain_id"], r["section_id"]) == key else r for r in rows]


def test_a_new_lake_inspects_everything():
    p = plan(registered=[], brains=[])
    assert keys(p.inspect) == keys(schema("sections").table(REGISTERED)) and p.removed.num_rows == 0


def test_unchanged_input_is_no_work_and_keeps_the_counts():
    p = plan()
    assert p.inspect.num_rows == 0 and p.removed.num_rows == 0
    assert p.brains["n_ok"].to_pylist() == [3, 3]
    assert changed_brains(p.brains, schema("brains").table(BRAINS)).num_rows == 0


def test_a_changed_image_reinspects_its_brain():
    landed = with_([landed_row(r) for r in REGISTERED], ("B02", 2), file_mtime_ns=8)
    assert keys(plan(landed=landed).inspect) == {("B02", s) for s in (1, 2, 3)}
    landed = with_([landed_row(r) for r in REGISTERED], ("B01", 3), file_size=1)
    assert keys(plan(landed=landed).inspect) == {("B01", s) for s in (1, 2, 3)}


def test_a_replaced_or_unreadable_warp_reinspects_its_brain():
    warped = [section("B01", s, warp_uri="/l/B01/w.nii", warp_hash="w1") for s in (1, 2, 3)] + REGISTERED[3:]
    landed = [landed_row(r) for r in warped]
    assert plan(registered=warped, landed=landed).inspect.num_rows == 0
    assert {b for b, _ in keys(plan(registered=warped, landed=with_(landed, ("B01", 2), warp_hash="w2")).inspect)} == {"B01"}
    assert {b for b, _ in keys(plan(registered=warped, landed=with_(landed, ("B01", 2), warp_hash=None)).inspect)} == {"B01"}


def test_a_changed_manifest_reinspects_its_brain_and_only_then_are_rows_committed():
    landed_brains = [{**BRAINS[0], "manifest_hash": "new"}, BRAINS[1]]
    p = plan(landed_brains=landed_brains)
    assert keys(p.inspect) == {("B01", s) for s in (1, 2, 3)}
    # the affine of B01/2 changed in the manifest; B01/1 and B01/3 inspect to their registered rows
    inspected = schema("sections").table(with_(REGISTERED[:3], ("B01", 2), transform=[*T[:3], -5.0, *T[4:]]))
    assert keys(changed_sections(inspected, schema("sections").table(REGISTERED))) == {("B01", 2)}
    assert keys(changed_sections(inspected.slice(0, 1), schema("sections").table(REGISTERED))) == set()


def test_a_section_registered_as_error_is_tried_again():
    registered = with_(REGISTERED, ("B02", 3), status="error", error="bad")
    assert {b for b, _ in keys(plan(registered=registered).inspect)} == {"B02"}


def test_a_removed_section_leaves():
    landed = [landed_row(r) for r in REGISTERED if (r["brain_id"], r["section_id"]) != ("B01", 2)]
    p = plan(landed=landed, landed_brains=[{**BRAINS[0], "manifest_hash": "new", "n_sections": 2}, BRAINS[1]])
    assert keys(p.removed) == {("B01", 2)} and keys(p.inspect) == {("B01", 1), ("B01", 3)}


def test_an_unreadable_manifest_is_its_brains_error_and_keeps_its_sections():
    broken = {**BRAINS[1], "status": "error", "error": "/l/B02/manifest.csv: line 3: bad", "manifest_hash": None,
              "n_sections": 0, "n_ok": 0, "n_error": 0}
    p = plan(landed=[landed_row(r) for r in REGISTERED[:3]], landed_brains=[BRAINS[0], broken])
    assert p.inspect.num_rows == 0 and p.removed.num_rows == 0
    changed = changed_brains(p.brains, schema("brains").table(BRAINS)).to_pylist()
    assert [(b["brain_id"], b["status"], b["error"]) for b in changed] == [("B02", "error", broken["error"])]


def test_errors_are_counted_per_brain():
    p = plan(landed_brains=[{**BRAINS[0], "manifest_hash": "new"}, BRAINS[1]])
    inspected = schema("sections").table(with_(REGISTERED[:3], ("B01", 1), status="error", error="x.tif: bad dtype"))
    counted = {r["brain_id"]: (r["n_ok"], r["n_error"]) for r in counted_brains(p.brains, inspected).to_pylist()}
    assert counted == {"B01": (2, 1), "B02": (3, 0)}
    assert changed_brains(counted_brains(p.brains, inspected), schema("brains").table(BRAINS))["brain_id"].to_pylist() == ["B01"]
