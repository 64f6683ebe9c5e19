"""The export stage's compute: the cluster map (k-means over the nodes' features), and the writers of the
label tables and of one brain's surface, per-vertex label maps, volumes and HTML views (the rules are in
`export/job.py`'s docstring)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cytolake.atlas.pmaps import Atlas
from cytolake.atlas.registered import area_labels
from cytolake.config import Settings
from cytolake.export.clusters import cluster_scores
from cytolake.export.labels import table, write_freesurfer_lut, write_fsl_lut
from cytolake.export.maps import (label_volume, write_label_volume, write_surface, write_surface_labels,
                                  write_surface_view, write_volume_view)
from cytolake.export.plan import ExportError
from cytolake.lake import Lake


def best_clusters(settings: Settings, gs) -> tuple[np.ndarray, int]:
    """The k-means clusters of the nodes' features at the k of `evaluate.clusters` with the best NMI:
    (per-node assignment, k)."""
    found = cluster_scores(gs.features, gs.label, settings.evaluate.clusters)
    if not found:
        raise ExportError(f"no k in evaluate.clusters {settings.evaluate.clusters} is below the {len(gs)} nodes")
    best = max(found, key=lambda c: c["nmi"])
    return best["assign"], best["k"]


def label_tables(lake: Lake, out: Path, k: int) -> tuple[list[Path], list, list]:
    """The FreeSurfer and FSLeyes tables of areas and clusters; (their files, area rows, cluster rows)."""
    area_rows = table(area_labels(lake))
    cluster_rows = table([f"cluster_{c}" for c in range(k)])
    files = [write_freesurfer_lut(out / "areas_FreeSurferColorLUT.txt", area_rows),
             write_fsl_lut(out / "areas.lut", area_rows),
             write_freesurfer_lut(out / "clusters_FreeSurferColorLUT.txt", cluster_rows),
             write_fsl_lut(out / "clusters.lut", cluster_rows)]
    return files, area_rows, cluster_rows


def brain_files(out: Path, b: str, m: dict, per_node: dict[str, np.ndarray], area_rows, cluster_rows, atlas: Atlas,
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
