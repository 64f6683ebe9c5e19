"""build_graph's incremental rules on its pure plan: Arrow tables in, the brains to build out; no Spark."""

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cytolake.config import load_config
from cytolake.graph.plan import plan_graphs

CFG = load_config(Path(__file__).resolve().parents[1] / "conf" / "test.yaml")
M = "m1"


def sections(*rows):
    return pa.table({k: [r[i] for r in rows] for i, k in enumerate(
        ["brain_id", "section_id", "status", "content_hash", "transform", "image_uri"])})


def patches(*sec):
    """Two patches per (brain, section)."""
    rows = [(b, f"{b}-{s}-{i}", s, i, 0, "train", f"c{s}", "t") for b, s in sec for i in range(2)]
    return pa.table({k: [r[i] for r in rows] for i, k in enumerate(
        ["brain_id", "patch_id", "section_id", "x", "y", "split", "content_hash", "tiling_hash"])})


def features(p: pa.Table) -> pa.Table:
    return p.select(["brain_id", "patch_id", "content_hash", "tiling_hash"])


def built(*pairs):
    return pa.table({"brain_id": [b for b, _ in pairs], "graph_hash": [h for _, h in pairs]})


class Lake:
    """What a lake with two brains (B01: sections 1, 2; B02: section 1) holds, and its plan."""

    def __init__(self):
        self.sections = sections(("B01", 1, "ok", "h1", "T", "u"), ("B01", 2, "ok", "h2", "T", "u"),
                                 ("B02", 1, "ok", "h3", "T", "u"))
        self.patches = patches(("B01", 1), ("B01", 2), ("B02", 1))
        self.features = features(self.patches)
        self.patch_files = ["brain_id=B01/a.parquet", "brain_id=B02/b.parquet"]
        self.feature_files = [f"model_version={M}/brain_id=B01/f.parquet", f"model_version={M}/brain_id=B02/g.parquet"]
        self.nodes = self.meshes = built()
        self.settings = CFG

    def plan(self, brains=None):
        return plan_graphs(self.settings, M, self.patches, self.features, self.sections, self.patch_files,
                           self.feature_files, self.nodes, self.meshes, brains)

    def build_all(self):
        """As if every planned brain had been built and committed."""
        done = built(*[(w.brain_id, w.graph_hash) for w in self.plan().build])
        self.nodes = self.meshes = done
        return self


def test_an_empty_graph_table_builds_every_brain_with_its_ok_sections_and_patches():
    p = Lake().plan()
    assert [w.brain_id for w in p.build] == ["B01", "B02"] and not p.current and not p.not_ready
    b01 = p.build[0]
    assert [s["section_id"] for s in b01.sections] == [1, 2] and b01.patches.num_rows == 4
    assert b01.patches.column_names == ["patch_id", "section_id", "x", "y", "split"]


def test_unchanged_inputs_build_nothing():
    p = Lake().build_all().plan()
    assert p.build == [] and p.current == ["B01", "B02"]


def test_a_changed_feature_file_rebuilds_only_that_brain():
    lake = Lake().build_all()
    lake.feature_files = [lake.feature_files[0], f"model_version={M}/brain_id=B02/new.parquet"]
    p = lake.plan()
    assert [w.brain_id for w in p.build] == ["B02"] and p.current == ["B01"]


def test_a_changed_patch_file_or_section_image_rebuilds_only_that_brain():
    lake = Lake().build_all()
    lake.patch_files = ["brain_id=B01/new.parquet", "brain_id=B02/b.parquet"]
    assert [w.brain_id for w in lake.plan().build] == ["B01"]
    lake = Lake().build_all()
    lake.sections = sections(("B01", 1, "ok", "h1", "T", "u"), ("B01", 2, "ok", "h2", "T", "u"),
                             ("B02", 1, "ok", "changed", "T", "u"))
    assert [w.brain_id for w in lake.plan().build] == ["B02"]


def test_feature_files_of_another_model_do_not_count():
    lake = Lake().build_all()
    lake.feature_files = lake.feature_files + ["model_version=other/brain_id=B01/x.parquet"]
    assert lake.plan().build == []


def test_changed_graph_settings_rebuild_every_brain():
    lake = Lake().build_all()
    lake.settings = CFG.model_copy(update={"graph": CFG.graph.model_copy(update={"voxel_mm": 0.5})})
    assert [w.brain_id for w in lake.plan().build] == ["B01", "B02"]
    lake.settings = CFG.model_copy(update={"tiling": CFG.tiling.model_copy(
        update={"mask_threshold": 200 if CFG.tiling.mask_threshold != 200 else 100})})
    assert [w.brain_id for w in lake.plan().build] == ["B01", "B02"]


def test_a_removed_section_rebuilds_its_brain_without_its_nodes():
    lake = Lake().build_all()
    lake.sections = sections(("B01", 1, "ok", "h1", "T", "u"), ("B01", 2, "failed", "h2", "T", "u"),
                             ("B02", 1, "ok", "h3", "T", "u"))
    lake.patches = patches(("B01", 1), ("B02", 1))  # tile dropped the failed section's patches
    lake.features = features(lake.patches)
    p = lake.plan()
    assert [w.brain_id for w in p.build] == ["B01"]
    w = p.build[0]
    assert [s["section_id"] for s in w.sections] == [1] and set(w.patches["section_id"].to_pylist()) == {1}


def test_a_graph_without_its_mesh_is_rebuilt():
    lake = Lake().build_all()
    lake.meshes = lake.meshes.filter(pc.equal(lake.meshes["brain_id"], "B02"))
    assert [w.brain_id for w in lake.plan().build] == ["B01"]


def test_a_brain_with_patches_lacking_features_is_not_ready_and_names_the_count():
    lake = Lake()
    lake.features = lake.features.slice(1)  # one B01 patch without features of the model
    p = lake.plan()
    assert [w.brain_id for w in p.build] == ["B02"]
    assert p.not_ready["B01"].startswith(f"1 of 4 patches have no current features for model {M}")


def test_features_of_an_older_tiling_do_not_count():
    lake = Lake()
    lake.features = lake.features.set_column(3, "tiling_hash", pa.array(["old"] * lake.features.num_rows))
    p = lake.plan()
    assert p.build == [] and set(p.not_ready) == {"B01", "B02"}


@pytest.mark.parametrize("brains, want", [(["B02"], ["B02"]), (None, ["B01", "B02"]), (["B09"], [])])
def test_only_the_named_brains_are_planned(brains, want):
    assert [w.brain_id for w in Lake().plan(brains).build] == want
