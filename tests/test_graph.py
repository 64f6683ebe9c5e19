"""Embedding and graph building on a tiny tiled lake: real Spark, real Delta tables, real BigTIFF sections."""

import shutil

import numpy as np
import pyarrow.compute as pc
import pytest
import tifffile
import torch
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from cytolake.atlas.pmaps import Atlas
from cytolake.embed.inference import task_encoder
from cytolake.embed.job import model_dir, run_embed
from cytolake.graph.build import AtlasFrame, fsaverage_graph, graph_from_mesh
from cytolake.graph.compute import brain_result
from cytolake.graph.job import run_build_graph
from cytolake.graph.mesh import SectionPlane, reconstruct, surface_mesh
from cytolake.graph.plan import SECTION_KEYS, BrainWork
from cytolake.io.images import read_info
from cytolake.lake import Lake
from cytolake.tiling.geometry import patch_geometry, patch_id
from cytolake.tiling.mask import section_cortex_mask
from cytolake.train.model import to_input
from cytolake.train.model import RANDOM_INIT, load_encoder

from conftest import copy_of, expected_pmaps


quiet = dict(log=lambda *a: None)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory, embedded, spark):
    session, first = embedded
    cfg = copy_of(session, tmp_path_factory.mktemp("graphs"), models=True)
    summary = run_build_graph(cfg, spark, RANDOM_INIT, **quiet)
    return cfg, first, summary


def nodes_of(cfg):
    return Lake(cfg.paths.lake).read("graph_nodes", filters=pc.field("model_version") == RANDOM_INIT)


def test_every_patch_is_embedded_once_and_a_rerun_adds_nothing(graphs, spark):
    cfg, first, _ = graphs
    lake = Lake(cfg.paths.lake)
    n_patches = lake.read("patches", ["patch_id"]).num_rows
    feats = lake.read("features", ["patch_id"])
    assert sum(first.embedded.values()) == n_patches == feats.num_rows == len(set(feats["patch_id"].to_pylist()))
    v = lake.version("features")
    again = run_embed(cfg, spark, RANDOM_INIT, **quiet)
    assert again.embedded == {} and again.version is None and lake.version("features") == v


def test_features_equal_the_encoder_applied_to_the_patch(graphs):
    cfg, _, _ = graphs
    lake = Lake(cfg.paths.lake)
    patches = lake.read("patches", ["patch_id", "height", "width", "image"]).slice(0, 200)
    want = {r["patch_id"]: r for r in patches.to_pylist()[::40]}
    feats = {r["patch_id"]: np.asarray(r["embedding"], np.float32) for r in
             lake.read("features", ["patch_id", "embedding"], filters=pc.field("patch_id").isin(list(want))).to_pylist()}
    assert set(feats) == set(want)
    model = load_encoder(model_dir(cfg, RANDOM_INIT))
    for pid, r in want.items():
        img = torch.from_numpy(np.frombuffer(r["image"], np.uint8).reshape(1, r["height"], r["width"]).copy())
        with torch.no_grad():
            direct = model.features(to_input(img))[0].numpy()
        np.testing.assert_allclose(feats[pid], direct, rtol=1e-4, atol=1e-4)


def test_nodes_lie_in_the_cortex_mask_near_their_vertex_in_their_sections_split(graphs):
    cfg, _, summary = graphs
    assert sorted(summary.built) == ["B01", "B02"] and not summary.failed
    lake = Lake(cfg.paths.lake)
    secs = {(s["brain_id"], s["section_id"]): s for s in lake.read("sections").to_pylist()}
    split_of = {(r["brain_id"], r["section_id"]): r["split"]
                for r in lake.read("patches", ["brain_id", "section_id", "split"]).to_pylist()}
    nodes = nodes_of(cfg).to_pandas()
    assert len(nodes) > 1000
    graph_settings, tiling = cfg.graph, cfg.tiling
    edge = []
    for (b, sid), grp in nodes.groupby(["brain_id", "section_id"]):
        s = secs[(b, sid)]
        mask, scale = section_cortex_mask(s["image_uri"], s["spacing_um"], read_info(s["image_uri"]).level_shapes,
                                          tiling.mask_spacing_um, tiling.mask_threshold)
        r, c = (grp.y // scale).astype(int), (grp.x // scale).astype(int)
        assert mask[r, c].all(), (b, sid)
        # moved into the cortex from its edge (graph.node_depth_mm): few nodes lie on the mask's last pixel,
        # where every node lay when tied to the nearest in-mask pixel of an outer surface
        edge.append((distance_transform_edt(mask)[r, c] <= 1).mean())
        a = np.asarray(s["transform"]).reshape(4, 4)
        ref = np.c_[grp.x, grp.y, np.zeros(len(grp)), np.ones(len(grp))] @ a[:3].T
        np.testing.assert_allclose(np.stack(grp.ref_xyz), ref, atol=1e-6)
        reach = graph_settings.max_node_distance_mm + graph_settings.node_depth_mm
        assert (np.linalg.norm(np.stack(grp.vertex_xyz) - ref, axis=1) <= reach + 1e-9).all()
        assert set(grp.split) == {split_of[(b, sid)]}  # the split its section's training patches have
    assert graph_settings.node_depth_mm > 0 and np.mean(edge) < 0.25, edge
    assert all(len(v) == 512 for v in nodes.features[:50])  # conf/test.yaml: ResNet-18
    assert all(len(v) == 103 for v in nodes.pmap[:50])
    can = np.stack(nodes.canonical_xyz)
    assert (np.abs(can) <= 1).all()
    assert nodes.label.notna().sum() > 100


def test_node_features_are_the_encoder_applied_to_a_patch_cut_at_the_node(graphs):
    """A node's features come from its own location: the patch centred at (x, y) on its section, read at
    the tiling level and window (here cut independently, with tifffile), embedded by the model's encoder;
    its patch_id is the id tiling gives a patch there. The nearest grid patch's features are not it."""
    cfg, _, _ = graphs
    lake = Lake(cfg.paths.lake)
    secs = {(s["brain_id"], s["section_id"]): s for s in lake.read("sections").to_pylist()}
    nodes = nodes_of(cfg).sort_by([("brain_id", "ascending"), ("node_id", "ascending")]).to_pylist()[::97]
    grid = {r["patch_id"]: r for r in lake.read("patches", ["patch_id", "brain_id", "section_id", "x", "y"]).to_pylist()}
    model = load_encoder(model_dir(cfg, RANDOM_INIT))
    tiling = cfg.tiling
    far_from_grid = 0
    for n in nodes:
        s = secs[(n["brain_id"], n["section_id"])]
        level = int(np.log2(tiling.spacing_um / s["spacing_um"]))  # conf/test.yaml: 200 -> 400 um, one level down
        assert s["spacing_um"] * 2**level == tiling.spacing_um and read_info(s["image_uri"]).levels > level
        image = np.pad(tifffile.imread(s["image_uri"], level=level), tiling.patch_px, constant_values=255)
        top, left = n["y"] // 2**level - tiling.patch_px // 2 + tiling.patch_px, n["x"] // 2**level - tiling.patch_px // 2 + tiling.patch_px
        patch = image[top:top + tiling.patch_px, left:left + tiling.patch_px]
        with torch.no_grad():
            direct = model.features(to_input(torch.from_numpy(patch[None].copy())))[0].numpy()
        np.testing.assert_allclose(np.asarray(n["features"], np.float32), direct, rtol=1e-4, atol=1e-4)
        assert n["patch_id"] == patch_id(n["brain_id"], n["section_id"], n["x"], n["y"],
                                         patch_geometry(tiling, s["spacing_um"], read_info(s["image_uri"]).levels))
        on_section = [p for p in grid.values() if (p["brain_id"], p["section_id"]) == (n["brain_id"], n["section_id"])]
        far_from_grid += min(np.hypot(p["x"] - n["x"], p["y"] - n["y"]) for p in on_section) > 0
    assert len(nodes) > 20 and far_from_grid > len(nodes) // 2


def test_every_mesh_vertex_near_an_in_mask_location_is_a_node_whatever_the_grid(graphs):
    """Nodes no longer need a grid patch within reach: the vertices kept are exactly those within
    max_node_distance_mm of an in-mask location of any section (here found independently, by a k-d tree over
    every in-mask pixel centre in MNI; up to one mask pixel of slack either side of the limit)."""
    cfg, _, _ = graphs
    lake = Lake(cfg.paths.lake)
    tiling, reach = cfg.tiling, cfg.graph.max_node_distance_mm
    secs = lake.read("sections").to_pylist()
    meshes = lake.read("graph_meshes", filters=pc.field("model_version") == RANDOM_INIT).to_pylist()
    assert sorted(m["brain_id"] for m in meshes) == ["B01", "B02"]
    for m in meshes:
        points, pixel_mm = [], 0.0
        for s in (s for s in secs if s["brain_id"] == m["brain_id"]):
            mask, scale = section_cortex_mask(s["image_uri"], s["spacing_um"], read_info(s["image_uri"]).level_shapes,
                                              tiling.mask_spacing_um, tiling.mask_threshold)
            r, c = np.nonzero(mask)
            x, y = np.floor((c + 0.5) * scale), np.floor((r + 0.5) * scale)
            a = np.asarray(s["transform"]).reshape(4, 4)
            points.append((np.c_[x, y, np.zeros(len(x)), np.ones(len(x))] @ a.T)[:, :3])
            pixel_mm = max(pixel_mm, scale * s["spacing_um"] / 1000)
        d, _ = cKDTree(np.concatenate(points)).query(np.asarray(m["vertices"]).reshape(-1, 3))
        kept = set(m["node_vertex"])
        assert set(np.flatnonzero(d <= reach - pixel_mm).tolist()) <= kept, m["brain_id"]
        assert kept <= set(np.flatnonzero(d <= reach + pixel_mm).tolist()), m["brain_id"]


def test_edges_are_symmetric_unique_within_a_brain_and_few_components(graphs):
    cfg, _, summary = graphs
    lake = Lake(cfg.paths.lake)
    edges = lake.read("graph_edges").to_pandas()
    nodes = nodes_of(cfg).to_pandas()
    for b, e in edges.groupby("brain_id"):
        pairs = set(zip(e.src, e.dst))
        assert len(pairs) == len(e), "duplicate edges"
        assert all((d, s) in pairs for s, d in pairs), "asymmetric"
        assert not any(s == d for s, d in pairs), "self loop"
        n = (nodes.brain_id == b).sum()
        assert e.src.max() < n and e.dst.max() < n and e.src.min() >= 0
        assert set(e.graph_hash) == set(nodes[nodes.brain_id == b].graph_hash)
        comps = summary.built[b]["components"]
        print(f"{b}: {n} nodes, {len(e) // 2} edges, {comps} connected components")
        assert comps <= max(20, n // 100)


def test_rebuilding_unchanged_brains_commits_nothing_and_a_model_without_an_encoder_is_refused(graphs, spark):
    cfg, _, _ = graphs
    lake = Lake(cfg.paths.lake)
    v = lake.version("graph_nodes"), lake.version("graph_edges"), lake.version("graph_meshes")
    again = run_build_graph(cfg, spark, RANDOM_INIT, **quiet)
    assert sorted(again.skipped) == ["B01", "B02"] and not again.built
    assert (lake.version("graph_nodes"), lake.version("graph_edges"), lake.version("graph_meshes")) == v
    with pytest.raises(FileNotFoundError, match="never-trained: no trained encoder"):
        run_build_graph(cfg, spark, "never-trained", **quiet)
    assert (lake.version("graph_nodes"), lake.version("graph_edges"), lake.version("graph_meshes")) == v


def test_a_brain_whose_image_cannot_be_read_where_its_nodes_are_is_that_brains_error(graphs, tmp_path):
    """The node patches are read at the tiling level, not the mask's: a section whose level-1 tiles are
    damaged still gives a mesh, and then fails its brain's task with the file named, as an unreadable mask
    would; the job lists that brain and commits the others (`run_build_graph`)."""
    cfg, _, _ = graphs
    lake = Lake(cfg.paths.lake)
    secs = sorted((s for s in lake.read("sections").to_pylist() if s["brain_id"] == "B02"), key=lambda s: s["section_id"])
    bad = tmp_path / "damaged.tif"
    shutil.copy(secs[0]["image_uri"], bad)
    with tifffile.TiffFile(bad) as tif:  # the level node patches are cut from: 400 um (conf/test.yaml)
        page = tif.series[0].levels[1].pages[0]
        spans = list(zip(page.dataoffsets, page.databytecounts))
    with open(bad, "r+b") as f:
        for offset, n in spans:
            f.seek(offset)
            f.write(b"\0" * n)
    sections = [{**{k: s[k] for k in SECTION_KEYS}, "split": "transfer"} for s in secs]
    sections[0]["image_uri"] = str(bad)
    atlas = Atlas(cfg.atlas)
    area_index_of = {a["area_id"]: a["area_index"] for a in lake.read("areas").to_pylist()}
    mdir = str(model_dir(cfg, RANDOM_INIT))
    frame = AtlasFrame(area_index_of, np.linalg.inv(atlas.affine), *atlas.bounds_mm())
    r = brain_result(BrainWork("B02", "h", sections), cfg, lambda: task_encoder(mdir, 1, "cpu"), frame)
    assert r["error"].startswith(f"build_graph: {bad}: cannot read window") and "nodes" not in r


def test_two_parallel_disks_make_one_closed_surface_between_them():
    yy, xx = np.mgrid[:100, :100]
    disk = (xx - 50) ** 2 + (yy - 50) ** 2 <= 30**2  # 0.5 mm pixels: radius 15 mm
    planes = []
    for k, y_mm in enumerate((-10.0, 0.0, 10.0)):
        a = np.array([[0.5, 0, 0, -25], [0, 0, 0, y_mm], [0, -0.5, 0, 25], [0, 0, 0, 1]])
        a[1, 2] = 1.0  # the third column only makes the matrix invertible
        planes.append(SectionPlane(k, a, disk, 1.0))
    vol, origin = reconstruct(planes, 1.0, 0.0)
    verts, faces = surface_mesh(vol, origin, 1.0, 5, 2.0)
    g = graph_from_mesh(faces, len(verts))
    assert g.components == 1
    r = np.hypot(verts[:, 0], verts[:, 2])
    assert verts[:, 1].min() >= -11 and verts[:, 1].max() <= 11  # the end planes, to one voxel
    side = np.abs(verts[:, 1]) < 8  # the cylinder's wall, away from its flat caps
    assert np.abs(r[side] - 15).max() < 1.5


def test_fsaverage5_gives_the_real_mesh_with_pmaps_at_its_vertices(cfg, atlas_nifti):
    atlas = Atlas(cfg.atlas)
    raw, inv = atlas_nifti
    rng = np.random.default_rng(5)
    for hemi in ("left", "right"):
        g = fsaverage_graph(atlas, hemi)
        assert len(g["vertex_xyz"]) == 10242
        assert len(g["src"]) == 2 * 30720
        assert set(zip(g["src"].tolist(), g["dst"].tolist())) == set(zip(g["dst"].tolist(), g["src"].tolist()))
        assert g["components"] == 1
        p = g["pmap"]
        assert p.shape == (10242, len(atlas.areas)) and p.min() >= 0 and p.max() <= 1
        some = rng.choice(10242, 200, replace=False)  # against scipy's trilinear sample of the NIfTI itself
        want = expected_pmaps(raw, inv, [a.area_id for a in atlas.areas], g["vertex_xyz"][some])
        assert want.max() > 0.5 and np.allclose(p[some], want, atol=1e-5)
        covered = (p.sum(1) > 0.1).mean()
        assert covered > 0.3, covered
        # the Juelich maps are per hemisphere: a left-hemisphere vertex carries left-hemisphere areas
        side = np.array([a.hemisphere for a in atlas.areas])
        own = "L" if hemi == "left" else "R"
        assert p[:, side == own].sum() > 5 * p[:, side != own].sum()
