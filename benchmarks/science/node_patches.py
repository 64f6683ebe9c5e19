"""Science: where a graph node's features come from, against the synthetic truth.

    .venv/bin/python -m benchmarks.science.node_patches --config conf/local.yaml [--model random-init] [--build]
        [--brains B01 ...] [--same-nodes-as OTHER_LAKE]

For every node of the model's graphs in the lake: the true area at the node's image location (the world's
truth, `<landing>/<brain>/truth/section_XXXX_labels.tif`) against the true area at the centre of the patch
its features were computed from, and the share of that patch's footprint (a 9 x 9 grid of points over its
window) in the node's area: of the whole window, and of its points inside any area (without background,
white matter and unmapped cortex, so the other areas' share alone). The patch is the `patches` row its patch_id names (the nearest grid patch, as
build_graph did before nodes had their own patches) or, for an id that no grid patch has, the patch tiling
would cut centred at the node (its id is checked against tiling's rule). `--build` first runs build_graph
for the model and prints its wall time; `--same-nodes-as` restricts the figures to the nodes (brain,
section, x, y) that another lake's graphs of the model also have (a lake built by the other rule over the
same mesh). Reads only lake tables and the landing, so the same script measures a lake built by either rule. Baseline in the same run: none, the truth is the reference.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from cytolake.config import load_config
from cytolake.io.images import read_info
from cytolake.io.labels import labels_at
from cytolake.lake import Lake
from cytolake.tiling.geometry import patch_geometry, patch_id

GRID = np.linspace(-0.5, 0.5, 9)  # points over a patch window, in window sides


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--model", default="random-init")
    p.add_argument("--build", action="store_true", help="run build_graph for the model first, timed")
    p.add_argument("--brains", nargs="*")
    p.add_argument("--same-nodes-as", help="another lake: only the nodes its graphs of the model also have")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    res: dict = {"model": a.model}
    if a.build:
        from cytolake.engines.spark import spark_session
        from cytolake.graph.job import run_build_graph

        spark = spark_session(cfg.spark)
        t0 = time.perf_counter()
        s = run_build_graph(cfg, spark, a.model, a.brains)
        res["build_graph_s"] = round(time.perf_counter() - t0, 1)
        res["built"] = {b: {k: r[k] for k in ("nodes", "vertices", "seconds", "feature_seconds") if k in r}
                        for b, r in s.built.items()}
        res["failed"] = s.failed
        spark.stop()
    lake = Lake(cfg.paths.lake)
    tiling = cfg.tiling
    f = pc.field("model_version") == a.model
    if a.brains:
        f &= pc.field("brain_id").isin(a.brains)
    cols = ["brain_id", "section_id", "x", "y"]
    nodes = lake.read("graph_nodes", [*cols, "patch_id"], filters=f).to_pylist()
    if a.same_nodes_as:
        other = {tuple(r.values()) for r in Lake(a.same_nodes_as).read("graph_nodes", cols, filters=f).to_pylist()}
        nodes = [n for n in nodes if tuple(n[c] for c in cols) in other]
    grid = {r["patch_id"]: (r["x"], r["y"]) for r in lake.read("patches", ["patch_id", "x", "y"]).to_pylist()}
    secs = {(s["brain_id"], s["section_id"]): s for s in lake.read("sections").to_pylist()}
    area_index_of = {r["area_id"]: r["area_index"] for r in lake.read("areas", ["area_id", "area_index"]).to_pylist()}
    centre_same = centre_off = labelled = own_grid = 0
    footprint, of_areas = [], []
    by_section: dict = {}
    for n in nodes:
        by_section.setdefault((n["brain_id"], n["section_id"]), []).append(n)
    for (b, sid), ns in sorted(by_section.items()):
        s = secs[(b, sid)]
        info = read_info(s["image_uri"])
        g = patch_geometry(tiling, s["spacing_um"], info.levels)
        truth = str(Path(cfg.paths.landing) / b / "truth" / f"section_{sid:04d}_labels.tif")
        centres = []
        for n in ns:
            if n["patch_id"] in grid:
                centres.append(grid[n["patch_id"]])
            elif n["patch_id"] == patch_id(b, sid, n["x"], n["y"], g):
                centres.append((n["x"], n["y"]))
                own_grid += 1
            else:
                raise ValueError(f"node {b}/{n['section_id']} at ({n['x']}, {n['y']}): patch {n['patch_id']} is neither "
                                 "a grid patch nor the patch tiling cuts at the node")
        xy = np.array([(n["x"], n["y"]) for n in ns], np.int64)
        c = np.array(centres, np.int64)
        at_node = labels_at(truth, xy[:, 0], xy[:, 1], info.width, area_index_of)
        at_centre = labels_at(truth, c[:, 0], c[:, 1], info.width, area_index_of)
        side = g.patch_px * g.spacing_um / s["spacing_um"]  # the window's side in level-0 pixels
        gx, gy = np.meshgrid(GRID * side, GRID * side)
        px = (c[:, None, 0] + gx.ravel()[None]).clip(0, info.width - 1).astype(np.int64)
        py = (c[:, None, 1] + gy.ravel()[None]).clip(0, info.height - 1).astype(np.int64)
        in_window = np.array(labels_at(truth, px.ravel(), py.ravel(), info.width, area_index_of),
                             object).reshape(px.shape)
        for k, own in enumerate(at_node):
            if own is None:
                continue
            labelled += 1
            centre_same += at_centre[k] == own
            centre_off += at_centre[k] is None
            footprint.append(float(np.mean(in_window[k] == own)))
            in_areas = np.array([v is not None for v in in_window[k]])
            of_areas.append(float(np.mean(in_window[k][in_areas] == own)))
    res.update(nodes=len(nodes), nodes_in_a_true_area=labelled, nodes_with_own_patch=own_grid,
               centre_in_own_area=round(centre_same / max(labelled, 1), 4),
               centre_off_labelled_cortex=round(centre_off / max(labelled, 1), 4),
               footprint_in_own_area=round(float(np.mean(footprint)) if footprint else float("nan"), 4),
               footprint_in_areas_in_own_area=round(float(np.mean(of_areas)) if of_areas else float("nan"), 4))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
