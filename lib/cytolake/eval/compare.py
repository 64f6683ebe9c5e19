"""The seed's comparison on one lake: pmap-argmax, linear probe, GNN and GNN+ per feature model, macro-F1 on
the `test` sections and the `transfer` brain, plus a clustering of the features."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression

from cytolake.config import Settings
from cytolake.eval.clusters import cluster_scores
from cytolake.gnn.data import GraphSet, load_graphs
from cytolake.gnn.job import run_train_gnn, score, split_score_masks
from cytolake.gnn.train import node_inputs
from cytolake.lake import Lake

METHODS = ("pmap-argmax", "linear", "gnn", "gnn+")


@dataclass
class ModelResult:
    model_version: str
    graphs: GraphSet
    predicted: dict[str, np.ndarray] = field(default_factory=dict)  # method -> per node
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> split metrics
    runs: dict[str, str] = field(default_factory=dict)  # gnn kind -> run_id
    clusters: list[dict] = field(default_factory=list)


def linear_probe(gs: GraphSet, train: np.ndarray) -> np.ndarray:
    """Logistic regression on the node features (the GNN's input without the graph), trained on the same nodes."""
    x = node_inputs(gs, "gnn")
    clf = LogisticRegression(max_iter=1000, C=0.5).fit(x[train], gs.label[train])
    return clf.predict(x)


def compare_model(settings: Settings, model_version: str, log=print) -> ModelResult:
    lake = Lake(settings.paths.lake)
    gs = load_graphs(lake, model_version)
    r = ModelResult(model_version, gs)
    masks = split_score_masks(gs, settings)
    r.predicted["pmap-argmax"] = gs.pmap.argmax(1)
    r.predicted["linear"] = linear_probe(gs, masks["train"] | masks["validation"])
    for kind in ("gnn", "gnn+"):
        run = run_train_gnn(settings, model_version, kind, gs=gs, log=log)
        r.predicted[kind], r.runs[kind] = run.predicted, run.run_id
    r.scores = {m: score(gs, p, masks) for m, p in r.predicted.items()}
    r.clusters = cluster_scores(gs.features, gs.label, settings.evaluate.clusters)
    return r
