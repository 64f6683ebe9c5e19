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
from cytolake.export.compute import best_clusters, brain_files, label_tables
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
    assign, k = clusters if clusters is not None else best_clusters(settings, gs)
    meshes = meshes_to_export(model, gs.graph_hashes, lake.read(
        "graph_meshes", filters=pc.field("model_version") == model), brains)
    out = Path(out or Path(settings.paths.reports) / f"maps-{rid}")
    work = _work_folder(out)
    try:
        result = Export(out, rid, k)
        result.files["tables"], area_rows, cluster_rows = label_tables(lake, work, k)
        atlas = Atlas(settings.atlas)
        for b, m in meshes.items():
            on = gs.brain == b
            per_node = {"predicted": predicted[on], "truth": gs.area_label[on],
                        "pmap_argmax": gs.classes.area_of(gs.class_pmap[on].argmax(1), gs.pmap[on]),
                        "clusters": assign[on]}
            result.files[b] = brain_files(work, b, m, per_node, area_rows, cluster_rows, atlas,
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
