"""The tile job's incremental rules, on plans: Arrow tables in, work out, no Spark, no lake."""

from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from cytolake.config import TilingSettings
from cytolake.schemas import schema
from cytolake.tiling.geometry import assign_splits, placement_hash, tiling_hash
from cytolake.tiling.plan import STATE, brains_to_rewrite, failed_sections, plan_tile

T = TilingSettings()


def registry(*rows: dict) -> pa.Table:
    base = {"status": "ok", "error": None, "image_uri": "/x.tif", "annotation_uri": None, "spacing_um": 2.0,
            "content_hash": "c", "warp_hash": None, "ingested_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
            "transform": [0.0] * 16}
    return schema("sections").table([{**base, **r} for r in rows])


SECTIONS = registry(*({"brain_id": b, "section_id": s} for b in ("B01", "B02") for s in (1, 2, 3, 4)))


def tiled_as_planned(sections: pa.Table, tiling: TilingSettings = T) -> pa.Table:
    """The `tiled` table after a complete run of `t` over `sections`."""
    rows = sections.to_pylist()
    splits = assign_splits([(r["brain_id"], r["section_id"], bool(r["annotation_uri"])) for r in rows], tiling)
    return pa.table({"brain_id": pa.array([r["brain_id"] for r in rows], pa.string()),
                     "section_id": pa.array([r["section_id"] for r in rows], pa.int32()),
                     "content_hash": pa.array([r["content_hash"] for r in rows], pa.string()),
                     "tiling_hash": pa.array([placement_hash(tiling_hash(tiling), r["warp_hash"]) for r in rows], pa.string()),
                     "split": pa.array([splits[(r["brain_id"], r["section_id"])] for r in rows], pa.string())}).select(STATE)


def keys(t: pa.Table) -> set:
    return set(zip(t["brain_id"].to_pylist(), t["section_id"].to_pylist()))


def edited(sections: pa.Table, brain: str, section: int, **changes) -> pa.Table:
    return registry(*({**r, **changes} if (r["brain_id"], r["section_id"]) == (brain, section) else r
                      for r in sections.to_pylist()))


def test_a_fresh_lake_tiles_every_ok_section():
    failed = edited(SECTIONS, "B02", 4, status="error", error="bad")
    plan = plan_tile(failed, tiled_as_planned(SECTIONS.slice(0, 0)), T)
    assert keys(plan.todo) == keys(SECTIONS) - {("B02", 4)} and not plan.todo["has_patches"].to_pylist().count(True)
    assert plan.keep.num_rows == 0 and plan.stale_brains == []
    assert set(plan.todo["split"].to_pylist()) <= {"train", "test", "transfer"}


def test_unchanged_input_is_no_work():
    plan = plan_tile(SECTIONS, tiled_as_planned(SECTIONS), T)
    assert plan.empty and keys(plan.keep) == keys(SECTIONS)


def test_a_new_image_retiles_exactly_that_section():
    tiled = tiled_as_planned(SECTIONS)
    plan = plan_tile(edited(SECTIONS, "B01", 3, content_hash="new"), tiled, T)
    assert keys(plan.todo) == {("B01", 3)} and plan.todo["has_patches"].to_pylist() == [True]
    assert keys(plan.keep) == keys(SECTIONS) - {("B01", 3)} and plan.stale_brains == []


def test_a_new_warp_retiles_exactly_that_section():
    plan = plan_tile(edited(SECTIONS, "B02", 2, warp_hash="w2"), tiled_as_planned(SECTIONS), T)
    assert keys(plan.todo) == {("B02", 2)}
    assert plan.todo["tiling_hash"].to_pylist() == [placement_hash(tiling_hash(T), "w2")]


def test_changed_tiling_settings_retile_everything():
    other = T.model_copy(update={"stride_um": T.stride_um * 2})
    plan = plan_tile(SECTIONS, tiled_as_planned(SECTIONS), other)
    assert keys(plan.todo) == keys(SECTIONS) and plan.keep.num_rows == 0


def test_a_moved_split_retiles_that_section():
    held_out = T.model_copy(update={"transfer_brains": ["B02"]})
    plan = plan_tile(SECTIONS, tiled_as_planned(SECTIONS), held_out)
    assert keys(plan.todo) == {k for k in keys(SECTIONS) if k[0] == "B02"}


def test_a_removed_or_failed_section_rewrites_its_brain_without_it():
    tiled = tiled_as_planned(SECTIONS)
    gone = SECTIONS.filter(pc.invert(pc.and_(pc.equal(SECTIONS["brain_id"], "B01"),
                                                              pc.equal(SECTIONS["section_id"], 2))))
    plan = plan_tile(gone, tiled, T)
    assert plan.todo.num_rows == 0 and plan.stale_brains == ["B01"] and ("B01", 2) not in keys(plan.keep)
    assert brains_to_rewrite(plan, outcome()) == ["B01"]
    plan = plan_tile(edited(SECTIONS, "B02", 1, status="error"), tiled, T)
    assert plan.stale_brains == ["B02"] and ("B02", 1) not in keys(plan.keep)


def test_only_the_brains_asked_for():
    plan = plan_tile(edited(SECTIONS, "B01", 1, content_hash="n"), tiled_as_planned(SECTIONS.slice(0, 0)), T, ["B02"])
    assert {b for b, _ in keys(plan.todo)} == {"B02"}
    # with both brains tiled and a section of each changed, only B02's is redone and only B02's others kept
    changed = edited(edited(SECTIONS, "B01", 1, content_hash="n"), "B02", 1, content_hash="n")
    plan = plan_tile(changed, tiled_as_planned(SECTIONS), T, ["B02"])
    assert keys(plan.todo) == {("B02", 1)} and plan.stale_brains == []
    assert {b for b, _ in keys(plan.keep)} == {"B02"} and ("B02", 1) not in keys(plan.keep)


def outcome(*rows: tuple) -> pa.Table:
    return pa.table({"brain_id": pa.array([r[0] for r in rows], pa.string()),
                     "section_id": pa.array([r[1] for r in rows], pa.int32()),
                     "n_patches": pa.array([r[2] for r in rows], pa.int64()),
                     "error": pa.array([r[3] for r in rows], pa.string())})


def test_a_brain_is_rewritten_when_a_section_gains_or_loses_patches():
    tiled = tiled_as_planned(SECTIONS.filter(pc.equal(SECTIONS["brain_id"], "B01")))
    plan = plan_tile(edited(SECTIONS, "B01", 1, content_hash="n"), tiled, T)
    # B01/1 had patches and fails; B02's sections are new: one with patches, the rest empty
    done = outcome(("B01", 1, 0, "tiling: unreadable"), ("B02", 1, 0, None), ("B02", 2, 5, None),
                   ("B02", 3, 0, None), ("B02", 4, 0, None))
    assert brains_to_rewrite(plan, done) == ["B01", "B02"]
    # new sections with no cortex and no patches before change nothing
    assert brains_to_rewrite(plan, outcome(("B02", 1, 0, None), ("B02", 3, 0, None))) == []
    assert brains_to_rewrite(plan, outcome(("B01", 1, 0, None))) == ["B01"]


def test_sections_that_fail_tiling_are_recorded_with_their_message():
    done = outcome(("B01", 2, 0, "tiling: B01/2.tif: unreadable"), ("B02", 3, 0, "tiling: out of memory"),
                   ("B02", 4, 7, None))
    rows = {(r["brain_id"], r["section_id"]): r for r in failed_sections(SECTIONS, done).to_pylist()}
    assert set(rows) == {("B01", 2), ("B02", 3)}
    assert rows[("B01", 2)]["status"] == "error" and rows[("B01", 2)]["error"] == "tiling: B01/2.tif: unreadable"
    assert rows[("B02", 3)]["error"] == "tiling: out of memory" and rows[("B02", 3)]["image_uri"] == "/x.tif"
