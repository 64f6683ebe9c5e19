"""Maps out: NIfTI label volumes, GIfTI surfaces and labels, label tables and HTML, written by evaluate and by
`cytolake export`, read back by nibabel and nilearn and checked against the lake's `predictions`."""

import json
import re

import matplotlib.image as mpimg
import nibabel as nib
import numpy as np
import pyarrow.compute as pc
import pytest
from scipy.spatial import cKDTree

from cytolake.cli import main
from cytolake.gnn.data import load_graphs
from cytolake.lake import Lake

from conftest import MODELS, write_config

pytestmark = pytest.mark.slow


def _lut(path) -> dict[int, str]:
    return {int(p[0]): p[1] for p in (line.split() for line in path.read_text().splitlines()) if p and p[0] != "#No."}


def _check_brain(out, lake, brain, run_id, area_names, tolerance_mm):
    from nilearn import surface

    pred = lake.read("predictions", ["node_id", "predicted"],
                     filters=(pc.field("run_id") == run_id) & (pc.field("brain_id") == brain)).sort_by("node_id")
    predicted = pred["predicted"].to_numpy()
    nodes = lake.read("graph_nodes", ["node_id", "vertex_xyz", "label", "pmap"],
                      filters=(pc.field("model_version") == MODELS[0]) & (pc.field("brain_id") == brain)).sort_by("node_id")
    vertex_xyz = np.asarray(nodes["vertex_xyz"].to_pylist())
    assert len(predicted) == nodes.num_rows > 20

    surf = nib.load(out / f"{brain}.surf.gii")
    coords, faces = surf.agg_data("pointset"), surf.agg_data("triangle")
    mesh = surface.load_surf_mesh(str(out / f"{brain}.surf.gii"))  # nilearn reads it too
    assert np.allclose(mesh.coordinates, coords) and len(faces) > len(coords)
    # the node vertices are mesh vertices
    tree = cKDTree(coords)
    dist, node_vertex = tree.query(vertex_xyz)
    assert dist.max() < 1e-3

    lab = nib.load(out / f"{brain}_predicted.label.gii")
    per_vertex = lab.agg_data()
    assert np.array_equal(surface.load_surf_data(str(out / f"{brain}_predicted.label.gii")), per_vertex)
    assert np.array_equal(per_vertex[node_vertex], predicted + 1)  # the predictions, node by node
    others = np.setdiff1d(np.arange(len(coords)), node_vertex)
    assert np.all(per_vertex[others] == 0)
    table = lab.labeltable.get_labels_as_dict()
    assert table[0] == "Unknown" and all(table[v + 1] == area_names[v] for v in np.unique(predicted))
    truth = nib.load(out / f"{brain}_truth.label.gii").agg_data()[node_vertex]
    label = np.asarray([-1 if v is None else v for v in nodes["label"].to_pylist()])
    assert np.array_equal(truth, np.where(label >= 0, label + 1, 0))
    argmax = nib.load(out / f"{brain}_pmap_argmax.label.gii").agg_data()[node_vertex]
    assert np.array_equal(argmax, np.asarray(nodes["pmap"].to_pylist()).argmax(1) + 1)
    assert nib.load(out / f"{brain}_clusters.label.gii").agg_data()[node_vertex].min() >= 1

    vol = nib.load(out / f"{brain}_predicted.nii.gz")
    assert vol.header.get_intent()[0] == "label" and int(vol.header["sform_code"]) == 4
    data = np.asarray(vol.dataobj)
    ijk = np.argwhere(data > 0)
    assert len(ijk) > len(predicted)
    xyz = nib.affines.apply_affine(vol.affine, ijk)
    d, nearest = cKDTree(vertex_xyz).query(xyz)
    assert d.max() <= tolerance_mm + 1e-6
    assert np.array_equal(data[tuple(ijk.T)], predicted[nearest] + 1)  # every labelled voxel: its nearest node
    # and the voxel under each node's vertex carries that node's (or an equally near node's) prediction
    own = np.rint(nib.affines.apply_affine(np.linalg.inv(vol.affine), vertex_xyz)).astype(int)
    inside = np.all((own >= 0) & (own < data.shape), axis=1)  # the mesh may reach past the atlas grid
    assert inside.mean() > 0.8 and np.mean(data[tuple(own[inside].T)] == predicted[inside] + 1) > 0.8
    assert set(np.unique(np.asarray(nib.load(out / f"{brain}_clusters.nii.gz").dataobj))) - {0}

    html = (out / f"{brain}_surface.html").read_text()
    assert "plotly" in html.lower() and len(html) > 100_000
    # a legend entry and hover text per area shown, named as in the label table: every area that labels a
    # whole triangle of the surface is there, and nothing that labels no vertex
    strings = {k: [json.loads(s) for s in re.findall(rf'"{k}":("(?:[^"\\]|\\.)*")', html)]
               for k in ("name", "hovertemplate")}  # JSON strings in the page (plotly escapes "/" and "<")
    shown = {int(v): n for v, _, n in (s.partition(" ") for s in strings["name"] if s.split(" ")[0].isdigit())}
    whole = {int(v) for v in per_vertex[faces][(per_vertex[faces] == per_vertex[faces][:, :1]).all(1), 0]}
    assert whole - {0} and whole <= set(shown) <= set(np.unique(per_vertex).tolist())
    assert all(n == (area_names[v - 1] if v else "Unknown (no node near)") for v, n in shown.items())
    assert all(any(h.startswith(f"{area_names[v - 1]}<br>MNI x") for h in strings["hovertemplate"]) for v in shown if v)
    vhtml = (out / f"{brain}_volume.html").read_text()  # nilearn's view_img of the predicted volume
    assert "brainsprite" in vhtml.lower() and len(vhtml) > 100_000


def test_evaluate_writes_the_maps_and_links_them_from_the_report(evaluated):
    cfg, path, results = evaluated
    lake = Lake(cfg.paths.lake)
    out = path.parent / "maps"
    names = lake.read("areas").sort_by("area_index")["label"].to_pylist()
    lut = _lut(out / "areas_FreeSurferColorLUT.txt")
    assert lut[0] == "Unknown" and [lut[i + 1] for i in range(len(names))] == [n.replace(" ", "_") for n in names]
    fsl = [line.split(maxsplit=4) for line in (out / "areas.lut").read_text().splitlines()]
    assert [int(r[0]) for r in fsl] == list(range(1, len(names) + 1)) and all(0 <= float(c) <= 1 for r in fsl for c in r[1:4])
    run_id = results[0].runs["gnn+"][cfg.evaluate.gnn_seeds.index(cfg.gnn.seed)]  # export maps the gnn.seed run
    for brain in sorted(set(load_graphs(lake, MODELS[0], merge_hemispheres=cfg.atlas.merge_hemispheres).brain.tolist())):
        _check_brain(out, lake, brain, run_id, names, cfg.export.max_distance_mm)
    text = path.read_text()
    for link in ("maps/B01.surf.gii", "maps/B01_predicted.label.gii", "maps/B01_predicted.nii.gz",
                 "maps/B01_surface.html", "maps/areas_FreeSurferColorLUT.txt", "maps/areas.lut"):
        assert f"]({link})" in text, link


def test_cytolake_export_writes_the_same_maps_to_a_named_folder(evaluated, tmp_path):
    cfg, path, _ = evaluated
    out = tmp_path / "exported"
    conf = str(write_config(cfg, tmp_path / "cfg.yaml"))
    assert main(["--config", conf, "export", "--model", MODELS[0], "--out", str(out), "--no-html"]) == 0
    for f in sorted((path.parent / "maps").iterdir()):
        if f.suffix == ".html":
            assert not (out / f.name).exists()
            continue
        a, b = f.name, out / f.name
        if a.endswith(".nii.gz"):
            assert np.array_equal(np.asarray(nib.load(f).dataobj), np.asarray(nib.load(b).dataobj)), a
        elif a.endswith(".gii"):
            assert all(np.array_equal(x, y) for x, y in zip(nib.load(f).agg_data(), nib.load(b).agg_data())), a
        else:
            assert f.read_text() == b.read_text(), a


def test_an_export_killed_midway_leaves_no_folder_and_a_rerun_writes_it_whole(evaluated, tmp_path):
    """SIGKILLed after some of its files are written: the folder is complete or absent (never a cut file or a
    partial set under the final names), and the next export writes it whole and clears what the dead one left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    cfg, path, _ = evaluated
    out, marker = tmp_path / "maps", tmp_path / "paused"
    conf = str(write_config(cfg, tmp_path / "cfg.yaml"))
    args = ["--config", conf, "export", "--model", MODELS[0], "--out", str(out)]
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "helpers" / "pause_mid_export.py"), str(marker), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not marker.exists():
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists() and not out.exists(), sorted(p.name for p in out.iterdir())
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (path.parent / "maps").iterdir())
    for html in out.glob("*.html"):  # whole: nilearn's view is a page inside an iframe's srcdoc
        assert html.read_text().rstrip().endswith(("</html>", "</iframe>")), html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml", "maps", "paused"]  # the dead run's files gone


def test_section_map_draws_a_named_sections_predictions_over_its_image(evaluated, tmp_path):
    from cytolake.io.images import read_info
    from cytolake.io.pyramid import finest_level_within

    cfg, _, _ = evaluated
    lake = Lake(cfg.paths.lake)
    conf = str(write_config(cfg, tmp_path / "cfg.yaml"))
    gs = load_graphs(lake, MODELS[0], merge_hemispheres=cfg.atlas.merge_hemispheres)
    sid = int(np.bincount(gs.section[gs.brain == "B01"]).argmax())  # the B01 section with most nodes
    png = tmp_path / "B01.png"
    assert main(["--config", conf, "section-map", "B01", str(sid), "--model", MODELS[0], "--out", str(png)]) == 0
    img = mpimg.imread(png)
    uri = next(r["image_uri"] for r in lake.read("sections").to_pylist()
               if r["brain_id"] == "B01" and r["section_id"] == sid)
    info = read_info(uri)
    width = info.level_shapes[finest_level_within(info.level_shapes, 2000)][1]
    assert img.shape[1] >= width and img.shape[0] >= info.level_shapes[0][0] * width / info.width  # full level
    colours = {tuple(np.round(c[:3], 2)) for c in img.reshape(-1, img.shape[2])[::7]}
    assert len(colours) > 20  # the section's grey levels and the areas' colours, not a blank page
    assert main(["--config", conf, "section-map", "B01", "999", "--model", MODELS[0], "--out", str(png)]) == 1
