"""Tiling on real synthetic BigTIFFs, the real Juelich pmaps in a real Delta table, real Spark."""

import numpy as np
import pyarrow as pa
import pytest
import tifffile

from cytolake.ingest.job import run_ingest
from cytolake.io.images import LevelReader, read_info
from cytolake.lake import Lake
from cytolake.tiling.geometry import grid_centres, patch_geometry
from cytolake.tiling.job import run_tile
from cytolake.tiling.mask import mask_level, section_mask

from conftest import expected_pmaps


@pytest.fixture
def tiled(with_atlas, spark):
    """Ingested and tiled on this test's own landing folder, which it may change."""
    cfg = with_atlas
    run_ingest(cfg, spark, log=lambda *a: None)
    summary = run_tile(cfg, spark, log=lambda *a: None)
    return cfg, summary


def patches(cfg) -> list[dict]:
    return Lake(cfg.paths.lake).read("patches").to_pylist()


def test_patch_count_is_grid_points_inside_mask(tiled_lake):
    cfg = tiled_lake
    tiling = cfg.tiling
    secs = {(s["brain_id"], s["section_id"]): s for s in Lake(cfg.paths.lake).read("sections").to_pylist()}
    rows = patches(cfg)
    assert {s["status"] for s in secs.values()} == {"ok"} and len(rows) > 100
    for key, s in secs.items():
        info = read_info(s["image_uri"])
        ml = mask_level(info.level_shapes, s["spacing_um"], tiling.mask_spacing_um)
        mask = section_mask(s["image_uri"], ml, s["spacing_um"] * 2**ml, tiling.mask_threshold)
        expected = grid_centres(mask, info.width / info.level_shapes[ml][1], tiling.stride_um / s["spacing_um"],
                                info.width, info.height)
        got = sorted((r["x"], r["y"]) for r in rows if (r["brain_id"], r["section_id"]) == key)
        assert got == sorted(map(tuple, expected.tolist())), key
        assert 0.05 < mask.mean() < 0.6  # cortex, not the whole field


def test_ref_xyz_pmaps_images_labels_and_splits(tiled_lake, atlas_nifti):
    cfg = tiled_lake
    lake = Lake(cfg.paths.lake)
    secs = {(s["brain_id"], s["section_id"]): s for s in lake.read("sections").to_pylist()}
    raw, inv = atlas_nifti  # independent trilinear sample of the NIfTI maps with nibabel + scipy
    area_ids = [a["area_id"] for a in lake.read("areas").to_pylist()]
    rows = patches(cfg)
    rng = np.random.default_rng(1)
    sample = [rows[i] for i in rng.choice(len(rows), 60, replace=False)]
    expected = expected_pmaps(raw, inv, area_ids, [r["ref_xyz"] for r in sample])
    for r, pmap in zip(sample, expected):
        s = secs[(r["brain_id"], r["section_id"])]
        a = np.asarray(s["transform"]).reshape(4, 4)
        assert np.allclose(r["ref_xyz"], (a @ [r["x"], r["y"], 0, 1])[:3], atol=1e-9)
        assert np.allclose(r["pmap"], pmap, atol=1e-5)
        # the image is the window around the centre, read at the chosen level
        g = patch_geometry(cfg.tiling, s["spacing_um"], s["levels"])
        with LevelReader(s["image_uri"], g.level) as lr:
            f = 2**g.level
            win = lr.window(int(np.floor(r["y"] / f - g.window_px / 2)), int(np.floor(r["x"] / f - g.window_px / 2)),
                            g.window_px, g.window_px)
        patch = np.frombuffer(r["image"], np.uint8).reshape(r["height"], r["width"])
        k = g.window_px // r["height"]
        assert np.array_equal(patch, np.rint(win.reshape(r["height"], k, r["width"], k).mean(axis=(1, 3))).astype(np.uint8))
    assert any(np.sum(r["pmap"]) > 0.1 for r in sample)
    # labels agree with the annotation images; unannotated sections have none
    for r in rows:
        s = secs[(r["brain_id"], r["section_id"])]
        if not s["annotation_uri"]:
            assert r["label"] is None
            continue
        ann = tifffile.imread(s["annotation_uri"])
        sc = s["width"] / ann.shape[1]
        v = ann[min(int(r["y"] / sc), ann.shape[0] - 1), min(int(r["x"] / sc), ann.shape[1] - 1)]
        assert r["label"] == (area_ids.index(v - 1) if v > 0 and (v - 1) in area_ids else None)
    assert sum(r["label"] is not None for r in rows) > 50
    splits = {(r["brain_id"], r["section_id"]): r["split"] for r in rows}
    assert {v for (b, _), v in splits.items() if b == "B02"} == {"transfer"}
    assert sorted(v for (b, _), v in splits.items() if b == "B01") == ["test", "train", "train"]
    assert len({r["patch_id"] for r in rows}) == len(rows)


def test_rerun_on_unchanged_sections_commits_nothing(tiled_lake, spark):
    cfg = tiled_lake
    lake = Lake(cfg.paths.lake)
    v = lake.version("patches")
    before = sorted(r["patch_id"] for r in patches(cfg))
    s = run_tile(cfg, spark, log=lambda *a: None)
    assert s.version is None and lake.version("patches") == v
    assert sorted(r["patch_id"] for r in patches(cfg)) == before


@pytest.mark.usefixtures("with_atlas")
def test_truncated_section_is_marked_and_the_others_are_tiled(cfg, spark):
    run_ingest(cfg, spark, log=lambda *a: None)
    lake = Lake(cfg.paths.lake)
    sec = next(s for s in lake.read("sections").to_pylist() if (s["brain_id"], s["section_id"]) == ("B01", 2))
    data = open(sec["image_uri"], "rb").read()
    open(sec["image_uri"], "wb").write(data[: len(data) * 2 // 3])  # truncated after ingest registered it
    summary = run_tile(cfg, spark, log=lambda *a: None)
    assert list(summary.failed) == [("B01", 2)] and "truncated" in summary.failed[("B01", 2)]
    secs = {(s["brain_id"], s["section_id"]): s for s in lake.read("sections").to_pylist()}
    assert secs[("B01", 2)]["status"] == "error" and "truncated" in secs[("B01", 2)]["error"]
    tiled = {(r["brain_id"], r["section_id"]) for r in patches(cfg)}
    assert tiled == {k for k in secs if k != ("B01", 2)}


@pytest.mark.slow  # a chain: ingest and tile, a section image changed, ingest and tile again
def test_changed_section_replaces_only_its_brain(tiled, spark, landing):
    cfg, _ = tiled
    lake = Lake(cfg.paths.lake)
    files_b02 = {p for p in pa.table(lake.table("patches").get_add_actions(flatten=True))["path"].to_pylist()
                 if p.startswith("brain_id=B02/")}
    before = {r["patch_id"]: r for r in patches(cfg)}
    img = landing / "B01" / "images" / "section_0003.tif"
    from cytolake.io.images import write_pyramid_tiff

    write_pyramid_tiff(img, np.fliplr(tifffile.imread(img)).copy(), cfg.synth.spacing_um, 128, 128)
    run_ingest(cfg, spark, log=lambda *a: None)
    s = run_tile(cfg, spark, log=lambda *a: None)
    assert s.committed_brains == ["B01"] and list(s.tiled) == [("B01", 3)]
    after = {r["patch_id"]: r for r in patches(cfg)}
    for pid, r in before.items():
        if (r["brain_id"], r["section_id"]) != ("B01", 3):
            assert after[pid] == r
    assert {p for p in pa.table(lake.table("patches").get_add_actions(flatten=True))["path"].to_pylist()
            if p.startswith("brain_id=B02/")} == files_b02


def test_splits_are_stratified_by_annotation_and_deterministic(cfg):
    from collections import Counter

    from cytolake.tiling.geometry import assign_splits

    tiling = cfg.tiling.model_copy(update={"test_fraction": 0.25, "transfer_brains": ("B09",)})
    secs = [("B01", i, i % 2 == 0) for i in range(16)] + [("B09", 1, True)]
    s = assign_splits(secs, tiling)
    assert s == assign_splits(list(reversed(secs)), tiling)
    assert s[("B09", 1)] == "transfer"
    assert Counter(v for (b, i), v in s.items() if b == "B01" and i % 2 == 0) == {"train": 6, "test": 2}
    assert Counter(v for (b, i), v in s.items() if b == "B01" and i % 2 == 1) == {"train": 6, "test": 2}
    # a systematic sample along the cutting order: never the slab's first or last section
    test = sorted(i for (b, i), v in s.items() if b == "B01" and v == "test")
    assert test[0] not in (0, 1) and test[-1] not in (14, 15)
    assert all(sum(lo <= i < lo + 8 for i in test) == 2 for lo in (0, 8))  # two per half (one per parity)
    four = assign_splits([("B01", i, True) for i in range(1, 5)], tiling)
    assert [v for _, v in sorted(four.items())].index("test") in (1, 2)


def test_changed_split_config_retiles_only_the_sections_whose_split_changed(tiled_copy, spark):
    cfg = tiled_copy
    before = {(r["brain_id"], r["section_id"]): r["split"] for r in patches(cfg)}
    assert {v for (b, _), v in before.items() if b == "B02"} == {"transfer"}
    moved = cfg.model_copy(update={"tiling": cfg.tiling.model_copy(update={"transfer_brains": ("B01",)})})
    s = run_tile(moved, spark, log=lambda *a: None)
    after = {(r["brain_id"], r["section_id"]): r["split"] for r in patches(cfg)}
    assert {v for (b, _), v in after.items() if b == "B01"} == {"transfer"}
    assert {v for (b, _), v in after.items() if b == "B02"} <= {"train", "test"}
    assert set(s.tiled) == set(before)  # every section's split changed here
    assert run_tile(moved, spark, log=lambda *a: None).version is None  # and now it is current
