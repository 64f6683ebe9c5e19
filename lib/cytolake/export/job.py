"""`cytolake export`: per brain, the predicted parcellation and the cluster map as NIfTI label volumes in
MNI space, the reconstructed surface with per-vertex maps as GIfTI, label tables, and an HTML view.

What is exported: the predictions of one GNN run, the one `train_gnn`/`evaluate` made on the model's
current graphs with the current settings (its run id is recomputed, so a stale run is never exported);
the clusters are k-means over the same nodes' features at the k of `evaluate.clusters` with the best
NMI (evaluate's own choice, and what it passes when it exports). Rules, the same in every brain:

* surface (`<brain>.surf.gii`): the mesh build_graph reconstructed (`graph_meshes`), MNI mm;
* per-vertex labels (`<brain>_<map>.label.gii`, map = predicted, truth, pmap_argmax, clusters): a vertex
  that is a graph node carries its node's value + 1; a vertex with no node (no image data within reach)
  is 0, `Unknown`;
* volumes (`<brain>_predicted.nii.gz`, `<brain>_clusters.nii.gz`): the atlas grid (1 mm MNI152 for the
  Juelich maps); a voxel whose centre is within `export.max_distance_mm` of a node's surface vertex takes
  the nearest node's value + 1, every other voxel 0;
* label tables: `areas_FreeSurferColorLUT.txt` / `clusters_FreeSurferColorLUT.txt` (FreeSurfer) and
  `areas.lut` / `clusters.lut` (FSLeyes): value i + 1 = area_index i (or cluster i).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from cytolake.atlas.pmaps import Atlas
from cytolake.config import Settings
from cytolake.export.clusters import cluster_scores
from cytolake.export.labels import table, write_freesurfer_lut, write_fsl_lut
from cytolake.export.maps import (label_volume, write_label_volume, write_surface, write_surface_labels,
                                  write_surface_view)
from cytolake.lake import Lake

MAPS = ("predicted", "truth", "pmap_argmax", "clusters")


class ExportError(RuntimeError):
    """Nothing consistent to export (no predictions for the current graphs, a mesh of another build)."""


@dataclass
class Export:
    out: Path
    run_id: str
    k: int
    files: dict[str, list[Path]] = field(default_factory=dict)  # brain (or "tables") -> files


def _predictions(lake: Lake, rid: str, gs) -> np.ndarray:
    t = lake.read("predictions", ["brain_id", "node_id", "predicted"], filters=pc.field("run_id") == rid)
    if t.num_rows != len(gs):
        raise ExportError(f"no complete predictions of run {rid} for the current graphs of model {gs.model_version} "
                          f"({t.num_rows} of {len(gs)} nodes): run jobs/train_gnn.py or jobs/evaluate.py first")
    return t.sort_by([("brain_id", "ascending"), ("node_id", "ascending")])["predicted"].to_numpy()


def _clusters(settings: Settings, gs) -> tuple[np.ndarray, int]:
    found = cluster_scores(gs.features, gs.label, settings.evaluate.clusters)
    if not found:
        raise ExportError(f"no k in evaluate.clusters {settings.evaluate.clusters} is below the {len(gs)} nodes")
    best = max(found, key=lambda c: c["nmi"])
    return best["assign"], best["k"]


def run_export(settings: Settings, out: Path | None = None, model: str | None = None, brains: list[str] | None = None,
               clusters: tuple[np.ndarray, int] | None = None, html: bool = True, log=print) -> Export:
    """Write the maps of every brain (or `brains`) of `model` (default `train.model_version`) under `out`
    (default `paths.reports/maps-<run id>`). `clusters`: a per-node assignment and its k, when the caller
    (evaluate) already has them. Reads the lake only."""
    from cytolake.gnn.data import load_graphs
    from cytolake.gnn.job import run_id

    lake = Lake(settings.paths.lake)
    model = model or settings.train.model_version
    kind = settings.export.gnn
    gs = load_graphs(lake, model)
    rid = run_id(gs, kind, settings)
    predicted = _predictions(lake, rid, gs)
    assign, k = clusters if clusters is not None else _clusters(settings, gs)
    out = Path(out or Path(settings.paths.reports) / f"maps-{rid}")
    out.mkdir(parents=True, exist_ok=True)
    result = Export(out, rid, k)

    areas = lake.read("areas").sort_by("area_index").to_pylist()
    area_rows = table([a["name"] if a["hemisphere"] == "B" else f"{a['name']}_{a['hemisphere']}" for a in areas])
    cluster_rows = table([f"cluster_{c}" for c in range(k)])
    result.files["tables"] = [
        write_freesurfer_lut(out / "areas_FreeSurferColorLUT.txt", area_rows), write_fsl_lut(out / "areas.lut", area_rows),
        write_freesurfer_lut(out / "clusters_FreeSurferColorLUT.txt", cluster_rows),
        write_fsl_lut(out / "clusters.lut", cluster_rows)]
    atlas = Atlas(settings.atlas)
    meshes = {r["brain_id"]: r for r in lake.read("graph_meshes", filters=pc.field("model_version") == model).to_pylist()}
    for b in sorted(set(gs.brain.tolist())):
        if brains and b not in brains:
            continue
        m = meshes.get(b)
        if m is None or m["graph_hash"] != gs.graph_hashes[b]:
            raise ExportError(f"brain {b}: the lake has no surface mesh of its current graph for model {model}: "
                              f"rerun jobs/build_graph.py --model {model}")
        on = gs.brain == b
        verts = np.asarray(m["vertices"], np.float64).reshape(-1, 3)
        faces = np.asarray(m["faces"], np.int64).reshape(-1, 3)
        node_vertex = np.asarray(m["node_vertex"], np.int64)
        per_node = {"predicted": predicted[on], "truth": gs.label[on], "pmap_argmax": gs.pmap[on].argmax(1),
                    "clusters": assign[on]}
        files = [write_surface(out / f"{b}.surf.gii", verts, faces)]
        for name, values in per_node.items():
            per_vertex = np.zeros(len(verts), np.int64)
            per_vertex[node_vertex] = np.where(values >= 0, values + 1, 0)  # unannotated truth: Unknown
            rows = cluster_rows if name == "clusters" else area_rows
            files.append(write_surface_labels(out / f"{b}_{name}.label.gii", per_vertex, rows, name))
            if name == "predicted" and html:
                files.append(write_surface_view(out / f"{b}_surface.html", verts, faces, per_vertex, rows,
                                                f"{b}: predicted areas ({kind}, {model})"))
        for name in ("predicted", "clusters"):
            vol = label_volume(verts[node_vertex], per_node[name], atlas.affine, atlas.shape,
                               settings.export.max_distance_mm)
            files.append(write_label_volume(out / f"{b}_{name}.nii.gz", vol, atlas.affine))
        result.files[b] = files
        log(f"  {b}: {len(verts)} vertices, {int(on.sum())} nodes -> {len(files)} files")
    log(f"export: {out}")
    return result


def report_section(e: Export, relative_to: Path) -> str:
    """Markdown linking the exported files, for the evaluation report."""
    rel = lambda p: Path(p).relative_to(relative_to).as_posix()  # noqa: E731
    lines = ["## Maps in MNI space (NIfTI, GIfTI, HTML)", "",
             f"GNN run `{e.run_id}`, clusters k={e.k}; label tables: "
             + ", ".join(f"[{Path(p).name}]({rel(p)})" for p in e.files["tables"]), ""]
    for b, files in e.files.items():
        if b != "tables":
            lines.append(f"- {b}: " + ", ".join(f"[{Path(p).name}]({rel(p)})" for p in files))
    return "\n".join(lines) + "\n"
