"""The graphs of one feature model as arrays: every brain's nodes stacked, edges with global indices."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cytolake.atlas.classes import Classes, classes_of
from cytolake.atlas.registered import area_rows
from cytolake.lake import Lake


@dataclass
class GraphSet:
    model_version: str
    brain: np.ndarray  # per node
    node_id: np.ndarray
    section: np.ndarray
    split: np.ndarray
    label: np.ndarray  # class index (atlas/classes.py), -1 where unannotated: what is trained and scored
    features: np.ndarray  # (n, feature_dim of the encoder)
    pmap: np.ndarray  # (n, areas): hemisphere-split, as the atlas gives it (GNN+'s input)
    canonical: np.ndarray  # (n, 3)
    x: np.ndarray  # level-0 image location
    y: np.ndarray
    src: np.ndarray  # global node indices
    dst: np.ndarray
    graph_hashes: dict[str, str]
    classes: Classes
    area_label: np.ndarray  # area_index, -1 where unannotated

    @cached_property
    def section_key(self) -> np.ndarray:
        """Per node, its section as one string, "<brain>/<section>": section ids repeat across brains."""
        return np.array([f"{b}/{int(s)}" for b, s in zip(self.brain, self.section)])

    @cached_property
    def class_pmap(self) -> np.ndarray:
        """(n, classes): the pmap summed over each class's areas; the atlas's own guess of the class. Computed
        once: GNN+'s prior, the atlas's argmax and the exported atlas map all read it."""
        return self.classes.pmap(self.pmap)

    def __len__(self) -> int:
        return len(self.node_id)


def _matrix(col: pa.ChunkedArray, dtype=np.float32) -> np.ndarray:
    flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return flat.reshape(len(col), -1) if len(col) else flat.reshape(0, 0)


def load_graphs(lake: Lake, model_version: str, brains: list[str] | None = None, *,
                merge_hemispheres: bool) -> GraphSet:
    """All brains' graphs for a feature model, labelled by class (`merge_hemispheres`: one class per area
    name; atlas/classes.py). Raises when a brain's nodes and edges come from different
    builds (a rebuild in progress) or when there is no graph at all."""
    f = pc.field("model_version") == model_version
    if brains:
        f &= pc.field("brain_id").isin(brains)
    nodes = lake.read("graph_nodes", filters=f).sort_by([("brain_id", "ascending"), ("node_id", "ascending")])
    if not nodes.num_rows:
        raise FileNotFoundError(f"no graph for model {model_version} in {lake.root}: run jobs/build_graph.py "
                                f"--model {model_version}")
    edges = lake.read("graph_edges", filters=f)
    brain = np.asarray(nodes["brain_id"].to_pylist())
    node_id = nodes["node_id"].to_numpy()
    names, first = np.unique(brain, return_index=True)
    offset = dict(zip(names.tolist(), first.tolist()))
    hashes = {}
    for b in names.tolist():
        nh = set(pc.unique(nodes.filter(pc.equal(nodes["brain_id"], b))["graph_hash"]).to_pylist())
        eh = set(pc.unique(edges.filter(pc.equal(edges["brain_id"], b))["graph_hash"]).to_pylist())
        if len(nh) != 1 or (eh and eh != nh):
            raise RuntimeError(f"brain {b}: graph_nodes and graph_edges of model {model_version} come from different "
                               f"builds ({sorted(nh)} vs {sorted(eh)}); rerun jobs/build_graph.py")
        hashes[b] = nh.pop()
        n = int((brain == b).sum())
        if not np.array_equal(node_id[offset[b]:offset[b] + n], np.arange(n)):
            raise RuntimeError(f"brain {b}: node ids of model {model_version} are not 0..{n - 1}")
    classes = classes_of(area_rows(lake), merge_hemispheres)
    area_label = pc.fill_null(nodes["label"], -1).to_numpy().astype(np.int64)
    eb = np.asarray(edges["brain_id"].to_pylist())
    base = np.array([offset[b] for b in eb], np.int64) if len(eb) else np.zeros(0, np.int64)
    return GraphSet(
        model_version=model_version, brain=brain, node_id=node_id, section=nodes["section_id"].to_numpy(),
        split=np.asarray(nodes["split"].to_pylist()), label=classes.label(area_label),
        features=_matrix(nodes["features"]), pmap=_matrix(nodes["pmap"]), canonical=_matrix(nodes["canonical_xyz"]),
        x=nodes["x"].to_numpy(), y=nodes["y"].to_numpy(),
        src=edges["src"].to_numpy() + base, dst=edges["dst"].to_numpy() + base, graph_hashes=hashes,
        classes=classes, area_label=area_label)
