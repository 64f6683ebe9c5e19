"""The train_gnn stage's compute (torch on the node arrays): the GAT fitted on the train mask with the epoch
chosen on validation (`gnn/train.py`), every node's class probabilities, their scores per split, and the
`predictions` rows as Arrow."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from cytolake.config import Settings
from cytolake.gnn.data import GraphSet
from cytolake.gnn.train import Fitted, Inputs, fit, node_inputs, node_prior, predict, split_masks
from cytolake.io.arrow import list_array
from cytolake.metrics import macro_f1


def score(gs: GraphSet, predicted: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for split, m in masks.items():
        out[f"{split}_macro_f1"] = macro_f1(gs.label[m], predicted[m])
        out[f"{split}_accuracy"] = float((gs.label[m] == predicted[m]).mean()) if m.any() else float("nan")
        out[f"{split}_nodes"] = float(m.sum())
    return out


def split_score_masks(gs: GraphSet, settings: Settings) -> dict[str, np.ndarray]:
    train, val = split_masks(gs, settings.gnn.validation_fraction, settings.gnn.seed)
    lab = gs.label >= 0
    return {"train": train, "validation": val, "test": lab & (gs.split == "test"), "transfer": lab & (gs.split == "transfer")}


def fit_predict(settings: Settings, rid: str, gs: GraphSet, kind: Inputs, masks: dict[str, np.ndarray],
                n_classes: int, log) -> tuple[np.ndarray, Fitted]:
    """Train the GAT on the train mask (the epoch chosen on validation); (per-node probabilities, the fit)."""
    import torch

    x, prior = node_inputs(gs, kind, settings.gnn.standardise), node_prior(gs, kind)
    log(f"train_gnn {rid}: {len(gs)} nodes ({int(masks['train'].sum())} train, {int(masks['validation'].sum())} "
        f"validation), {len(gs.src)} directed edges, {x.shape[1]} inputs")
    fitted = fit(x, gs.src, gs.dst, gs.label, masks["train"], masks["validation"], n_classes, settings.gnn, log, prior)
    probs = predict(fitted.model, torch.from_numpy(x), torch.from_numpy(np.stack([gs.src, gs.dst])).long(),
                    None if prior is None else torch.from_numpy(prior))
    return probs, fitted


def prediction_table(rid: str, gs: GraphSet, kind: Inputs, probs: np.ndarray) -> pa.Table:
    return pa.table({
        "run_id": pa.array([rid] * len(gs)), "brain_id": pa.array(gs.brain), "node_id": pa.array(gs.node_id),
        "model_version": pa.array([gs.model_version] * len(gs)), "gnn": pa.array([kind] * len(gs)),
        "split": pa.array(gs.split),
        "label": pa.array(np.where(gs.area_label >= 0, gs.area_label, 0), pa.int32(), mask=gs.area_label < 0),
        "predicted": pa.array(gs.classes.area_of(probs.argmax(1), gs.pmap), pa.int32()),
        "probabilities": list_array(probs, pa.float32())})
