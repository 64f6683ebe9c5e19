"""build_graph's incremental rules on its pure plan: Arrow tables in, the brains to build out; no Spark."""

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cytolake.config import load_config
from cytolake.graph.plan import plan_graphs
from cytolake.tiling.geometry import assign_splits

CFG = load_config(Path(__file__).resolve().parents[1] / "conf" / "test.yaml")
M = "m1"


def sections(*rows):
    """(brain, section, status, content_hash, transform, annotation_uri) per section."""
    cols = ["brain_id", "section_id", "status", "content_hash", "transform", "annotation_uri"]
    t = pa.table({k: [r[i] for r in rows] for i, k in enumerate(cols)})
    return t.append_column("image_uri", pa.array([f"{r[0]}/{r[1]}.tif" for r in rows]))


def built(*pairs):
    return pa.table({"brain_id": [b for b, _ in pairs], "graph_hash": [h for _, h in pairs]})


def with_tiling(settings, **kw):
    return settings.model_copy(update={"tiling": settings.tiling.model_copy(update=kw)})


class Lake:
    """What a lake with two brains (B01: sections 1-3; B02: sections 1-2) holds, and its plan."""

    def __init__(self):
        self.sections = sections(("B01", 1, "ok", "h1", "T", "a"), ("B01", 2, "ok", "h2", "T", None),
                                 ("B01", 3, "ok", "h3", "T", "a"), ("B02", 1, "ok", "h4", "T", "a"),
                                 ("B02", 2, "ok", "h5", "T", None))
        self.encoder = "e1"
        self.nodes = self.meshes = built()
        self.settings = CFG

    def plan(self, brains=None):
        return plan_graphs(self.settings, M, self.encoder, self.sections, self.nodes, self.meshes, brains)

    def build_all(self):
        """As if every planned brain had been built and committed."""
        done = built(*[(w.brain_id, w.graph_hash) for w in self.plan().build])
        self.nodes = self.meshes = done
        return self


def test_an_empty_graph_table_builds_every_brain_with_its_ok_sections_and_their_tiling_splits():
    lake = Lake()
    p = lake.plan()
    assert [w.brain_id for w in p.build] == ["B01", "B02"] and not p.current
    want = assign_splits([(s["brain_id"], s["section_id"], bool(s["annotation_uri"]))
                          for s in lake.sections.to_pylist()], CFG.tiling)
    for w in p.build:
        assert [s["section_id"] for s in w.sections] == sorted(s for b, s in want if b == w.brain_id)
        assert {s["section_id"]: s["split"] for s in w.sections} == {s: v for (b, s), v in want.items()
                                                                      if b == w.brain_id}
    assert {s["split"] for s in p.build[1].sections} == {"transfer"}  # conf/test.yaml: B02 is held out
    assert {s["split"] for s in p.build[0].sections} == {"train", "test"}


def test_unchanged_inputs_build_nothing():
    p = Lake().build_all().plan()
    assert p.build == [] and p.current == ["B01", "B02"]


def test_a_retrained_encoder_rebuilds_every_brain():
    lake = Lake().build_all()
    lake.encoder = "e2"
    assert [w.brain_id for w in lake.plan().build] == ["B01", "B02"]


def test_a_changed_section_image_or_transform_rebuilds_only_that_brain():
    lake = Lake().build_all()
    lake.sections = lake.sections.set_column(3, "content_hash", pa.array(["h1", "h2", "h3", "changed", "h5"]))
    assert [w.brain_id for w in lake.plan().build] == ["B02"]
    lake = Lake().build_all()
    lake.sections = lake.sections.set_column(4, "transform", pa.array(["T", "T2", "T", "T", "T"]))
    assert [w.brain_id for w in lake.plan().build] == ["B01"]


@pytest.mark.parametrize("change", [dict(patch_px=32), dict(spacing_um=800.0), dict(mask_spacing_um=400.0),
                                    dict(mask_threshold=200 if CFG.tiling.mask_threshold != 200 else 100)])
def test_changed_tiling_geometry_rebuilds_every_brain(change):
    """Node patches are cut with the tiling geometry: another patch size or spacing changes every node."""
    lake = Lake().build_all()
    lake.settings = with_tiling(CFG, **change)
    assert [w.brain_id for w in lake.plan().build] == ["B01", "B02"]


def test_a_changed_split_rebuilds_only_the_brains_whose_sections_change_split():
    lake = Lake().build_all()
    lake.settings = with_tiling(CFG, transfer_brains=("B01", "B02"))
    assert [w.brain_id for w in lake.plan().build] == ["B01"]
    assert {s["split"] for s in lake.plan().build[0].sections} == {"transfer"}


def test_changed_graph_settings_rebuild_every_brain():
    lake = Lake().build_all()
    lake.settings = CFG.model_copy(update={"graph": CFG.graph.model_copy(update={"voxel_mm": 0.5})})
    assert [w.brain_id for w in lake.plan().build] == ["B01", "B02"]


def test_a_removed_section_rebuilds_its_brain_without_it():
    lake = Lake().build_all()
    lake.sections = lake.sections.set_column(2, "status", pa.array(["ok", "error", "ok", "ok", "ok"]))
    p = lake.plan()
    assert [w.brain_id for w in p.build] == ["B01"]
    assert [s["section_id"] for s in p.build[0].sections] == [1, 3]


def test_a_graph_without_its_mesh_is_rebuilt():
    lake = Lake().build_all()
    lake.meshes = lake.meshes.filter(pc.equal(lake.meshes["brain_id"], "B02"))
    assert [w.brain_id for w in lake.plan().build] == ["B01"]


def test_the_hash_is_per_model():
    lake = Lake().build_all()
    assert plan_graphs(lake.settings, "m2", lake.encoder, lake.sections, lake.nodes, lake.meshes).current == []


@pytest.mark.parametrize("brains, want", [(["B02"], ["B02"]), (None, ["B01", "B02"]), (["B09"], [])])
def test_only_the_named_brains_are_planned(brains, want):
    assert [w.brain_id for w in Lake().plan(brains).build] == want
