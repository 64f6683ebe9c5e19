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

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from cytolake.atlas.pmaps import Atlas
from cytolake.config import Settings
from cytolake.export.clusters import cluster_scores
from cytolake.export.labels import table, write_freesurfer_lut, write_fsl_lut
from cytolake.export.maps import (label_volume, write_label_volume, write_surface, write_surface_labels,
                                  write_surface_view, write_volume_view)
from cytolake.export.plan import ExportError, meshes_to_export
from cytolake.gnn.plan import reusable_predictions
from cytolake.lake import Lake

MAPS = ("predicted", "truth", "pmap_argmax", "clusters")


@dataclass
class Export:
    out: Path
    run_id: str
    k: int
    files: dict[str, list[Path]] = field(default_factory=dict)  # brain (or "tables") -> files


def _predictions(lake: Lake, rid: str, gs) -> np.ndarray:
    from cytolake.gnn.job import predictions_of

    t = predictions_of(lake, rid)
    predicted = reusable_predictions(t, len(gs))
    if predicted is None:
        raise ExportError(f"no complete predictions of run {rid} for the current graphs of model {gs.model_version} "
                          f"({t.num_rows} of {len(gs)} nodes): run jobs/train_gnn.py or jobs/evaluate.py first")
    return predicted


def _clusters(settings: Settings, gs) -> tuple[np.ndarray, int]:
    found = cluster_scores(gs.features, gs.label, settings.evaluate.clusters)
    if not found:
        raise ExportError(f"no k in evaluate.clusters {settings.evaluate.clusters} is below the {len(gs)} nodes")
    best = max(found, key=lambda c: c["nmi"])
    return best["assign"], best["k"]


def _label_tables(lake: Lake, out: Path, k: int) -> tuple[list[Path], list, list]:
    """The FreeSurfer and FSLeyes tables of areas and clusters; (their files, area rows, cluster rows)."""
    areas = lake.read("areas").sort_by("area_index").to_pylist()
    area_rows = table([a["name"] if a["hemisphere"] == "B" else f"{a['name']}_{a['hemisphere']}" for a in areas])
    cluster_rows = table([f"cluster_{c}" for c in range(k)])
    files = [write_freesurfer_lut(out / "areas_FreeSurferColorLUT.txt", area_rows),
             write_fsl_lut(out / "areas.lut", area_rows),
             write_freesurfer_lut(out / "clusters_FreeSurferColorLUT.txt", cluster_rows),
             write_fsl_lut(out / "clusters.lut", cluster_rows)]
    return files, area_rows, cluster_rows


def _brain_files(out: Path, b: str, m: dict, per_node: dict[str, np.ndarray], area_rows, cluster_rows, atlas: Atlas,
                 max_distance_mm: float, title: str | None) -> list[Path]:
    """One brain's surface, per-vertex label maps, volumes and (with a `title`) HTML view."""
    verts = np.asarray(m["vertices"], np.float64).reshape(-1, 3)
    faces = np.asarray(m["faces"], np.int64).reshape(-1, 3)
    node_vertex = np.asarray(m["node_vertex"], np.int64)
    files = [write_surface(out / f"{b}.surf.gii", verts, faces)]
    for name, values in per_node.items():
        per_vertex = np.zeros(len(verts), np.int64)
        per_vertex[node_vertex] = np.where(values >= 0, values + 1, 0)  # unannotated truth: Unknown
        rows = cluster_rows if name == "clusters" else area_rows
        files.append(write_surface_labels(out / f"{b}_{name}.label.gii", per_vertex, rows, name))
        if name == "predicted" and title:
            files.append(write_surface_view(out / f"{b}_surface.html", verts, faces, per_vertex, rows, title))
    for name in ("predicted", "clusters"):
        vol = label_volume(verts[node_vertex], per_node[name], atlas.affine, atlas.shape, max_distance_mm)
        files.append(write_label_volume(out / f"{b}_{name}.nii.gz", vol, atlas.affine))
        if name == "predicted" and title:
            files.append(write_volume_view(out / f"{b}_volume.html", files[-1], area_rows, title))
    return files


def run_export(settings: Settings, out: Path | None = None, model: str | None = None, brains: list[str] | None = None,
               clusters: tuple[np.ndarray, int] | None = None, html: bool = True, log=print) -> Export:
    """Write the maps of every brain (or `brains`) of `model` (default `train.model_version`) under `out`
    (default `paths.reports/maps-<run id>`). `clusters`: a per-node assignment and its k, when the caller
    (evaluate) already has them. Reads the lake only. Everything is written beside `out` first and renamed into
    it at the end: an export killed midway leaves no file under `out` (`_work_folder`, `_publish`)."""
    from cytolake.gnn.data import load_graphs
    from cytolake.gnn.job import run_id

    lake = Lake(settings.paths.lake)
    model = model or settings.train.model_version
    kind = settings.export.gnn
    gs = load_graphs(lake, model, merge_hemispheres=settings.atlas.merge_hemispheres)
    rid = run_id(gs, kind, settings)
    predicted = _predictions(lake, rid, gs)
    assign, k = clusters if clusters is not None else _clusters(settings, gs)
    meshes = meshes_to_export(model, gs.graph_hashes, lake.read(
        "graph_meshes", filters=pc.field("model_version") == model), brains)
    out = Path(out or Path(settings.paths.reports) / f"maps-{rid}")
    work = _work_folder(out)
    try:
        result = Export(out, rid, k)
        result.files["tables"], area_rows, cluster_rows = _label_tables(lake, work, k)
        atlas = Atlas(settings.atlas)
        for b, m in meshes.items():
            on = gs.brain == b
            per_node = {"predicted": predicted[on], "truth": gs.area_label[on], "pmap_argmax": gs.pmap[on].argmax(1),
                        "clusters": assign[on]}
            result.files[b] = _brain_files(work, b, m, per_node, area_rows, cluster_rows, atlas,
                                           settings.export.max_distance_mm,
                                           f"{b}: predicted areas ({kind}, {model})" if html else None)
            log(f"  {b}: {m['n_vertices']} vertices, {int(on.sum())} nodes -> {len(result.files[b])} files")
        _publish(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result.files = {key: [out / Path(p).name for p in files] for key, files in result.files.items()}
    log(f"export: {out}")
    return result


def _work_folder(out: Path) -> Path:
    """A fresh hidden folder beside `out` (`.<name>.part-<pid>`) to write the export into, so that `out` never
    holds a cut file or part of a set; the folders of exports that died there (their process gone) are removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f".{out.name}.part-*"):
        pid = old.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    work = out.parent / f".{out.name}.part-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    return work


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _publish(work: Path, out: Path) -> None:
    """The finished export under its name: the folder renamed in one step when `out` is new, else each file
    renamed into it (a folder the caller named may hold other files), and the work folder removed."""
    if not out.exists():
        os.rename(work, out)
        return
    for f in sorted(work.iterdir()):
        os.replace(f, out / f.name)
    work.rmdir()


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
