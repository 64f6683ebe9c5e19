"""The poster's comparison on one lake: pmap-argmax, linear probe, GNN and GNN+ per feature model, macro-F1 on
the `test` sections and the `transfer` brain (GNN and GNN+ over `evaluate.gnn_seeds`), plus a clustering of
the features."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from cytolake.config import Settings, Standardise
from cytolake.export.clusters import cluster_scores
from cytolake.gnn.compute import score, split_score_masks
from cytolake.gnn.data import GraphSet, load_graphs
from cytolake.gnn.job import run_train_gnn
from cytolake.gnn.train import node_inputs
from cytolake.lake import Lake
from cytolake.metrics import paired_interval

METHODS = ("pmap-argmax", "linear", "gnn", "gnn+")
# the poster's names of the feature models, by training objective (train.objective in the model's config.json)
FEATURE_MODELS = {"supervised": "sup", "contrastive-label": "cont-sup", "contrastive": "cont-pmap", None: "random-init"}


@dataclass
class ModelResult:
    model_version: str
    graphs: GraphSet
    feature_model: str = "random-init"  # the poster's name: sup, cont-sup, cont-pmap, random-init
    predicted: dict[str, np.ndarray] = field(default_factory=dict)  # method -> per node (GNNs: the first seed's)
    seed_scores: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # method -> one per seed
    runs: dict[str, list[str]] = field(default_factory=dict)  # gnn kind -> run_id per seed
    clusters: list[dict] = field(default_factory=list)
    # split -> (low, high): 95 % interval of GNN+ (mean over seeds) minus pmap-argmax, paired bootstrap over sections
    gain_over_atlas: dict[str, tuple[float, float]] = field(default_factory=dict)

    def mean(self, method: str, key: str) -> float:
        return float(np.mean([s[key] for s in self.seed_scores[method]]))

    def sd(self, method: str, key: str) -> float:
        v = [s[key] for s in self.seed_scores[method]]
        return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def feature_model(models_dir: Path, model_version: str) -> str:
    """The poster's name of a feature model, from the objective its encoder was trained with."""
    path = Path(models_dir) / model_version / "config.json"
    cfg = json.loads(path.read_text()) if path.is_file() else {}
    if not cfg.get("steps"):  # never trained: the random-initialised baseline
        return FEATURE_MODELS[None]
    return FEATURE_MODELS[cfg["train"]["objective"]]


def linear_probe(gs: GraphSet, train: np.ndarray, standardise: Standardise) -> np.ndarray:
    """Logistic regression on the node features (the GNN's input without the graph), trained on the same nodes."""
    x = node_inputs(gs, "gnn", standardise)
    clf = LogisticRegression(max_iter=1000, C=0.5).fit(x[train], gs.label[train])
    return clf.predict(x)


def compare_model(settings: Settings, model_version: str, log=print, stage=lambda what: None) -> ModelResult:
    """pmap-argmax, the linear probe, and GNN and GNN+ over the GNN seeds for one feature model. `stage` is
    called before each of its 1 + 2 x seeds stages (the overall progress of `evaluate`)."""
    lake = Lake(settings.paths.lake)
    gs = load_graphs(lake, model_version, merge_hemispheres=settings.atlas.merge_hemispheres)
    r = ModelResult(model_version, gs, feature_model(settings.paths.models, model_version))
    masks = split_score_masks(gs, settings)
    stage(f"{model_version}: the atlas alone and the linear probe")
    r.predicted["pmap-argmax"] = gs.class_pmap.argmax(1)
    r.predicted["linear"] = linear_probe(gs, masks["train"] | masks["validation"], settings.gnn.standardise)
    for m in ("pmap-argmax", "linear"):
        r.seed_scores[m] = [score(gs, r.predicted[m], masks)]
    plus = []
    for kind in ("gnn", "gnn+"):
        r.seed_scores[kind], r.runs[kind] = [], []
        for seed in settings.evaluate.gnn_seeds:
            stage(f"{model_version}: {kind.upper()} seed {seed}")
            seeded = settings.model_copy(update={"gnn": settings.gnn.model_copy(update={"seed": seed})})
            run = run_train_gnn(seeded, model_version, kind, gs=gs, log=log)
            r.seed_scores[kind].append(score(gs, run.predicted, split_score_masks(gs, seeded)))
            r.runs[kind].append(run.run_id)
            r.predicted.setdefault(kind, run.predicted)
            if kind == "gnn+":
                plus.append(run.predicted)
    for split in ("test", "transfer"):
        m = masks[split]
        if m.any():
            r.gain_over_atlas[split] = paired_interval(gs.label[m], np.stack(plus)[:, m], r.predicted["pmap-argmax"][m],
                                                       groups=gs.section_key[m], strata=gs.brain[m])
    r.clusters = cluster_scores(gs.features, gs.label, settings.evaluate.clusters)
    return r
