"""The train_gnn job: one GAT run on one feature model's graphs -> `predictions` (every node) and `metrics`.

A run's id is a fingerprint of its graphs (their graph_hash) and settings: a rerun on the same graphs finds
its predictions and trains nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cytolake.config import Settings
from cytolake.gnn.compute import fit_predict, prediction_table, score, split_score_masks
from cytolake.gnn.data import GraphSet, load_graphs
from cytolake.gnn.plan import reusable_predictions
from cytolake.gnn.train import Inputs
from cytolake.lake import Lake
from cytolake.lake.fingerprint import short_fingerprint
from cytolake.schemas import schema

METHOD_VERSION = 8  # part of every run id: bump when training or selection changes, so older predictions are not reused


@dataclass
class GnnRun:
    run_id: str
    kind: str
    model_version: str
    predicted: np.ndarray  # per node of the GraphSet, class index (GraphSet.classes)
    scores: dict[str, float] = field(default_factory=dict)  # "<split>_macro_f1" ...
    trained: bool = True


def run_id(gs: GraphSet, kind: Inputs, settings: Settings) -> str:
    key = {"graphs": gs.graph_hashes, "gnn": settings.gnn.model_dump(mode="json"), "kind": kind, "method": METHOD_VERSION,
           "classes": list(gs.classes.names)}
    return f"{'gnnplus' if kind == 'gnn+' else 'gnn'}-{gs.model_version}-{short_fingerprint(key)}"


def predictions_of(lake: Lake, rid: str) -> pa.Table:
    """The committed predictions (brain_id, node_id, predicted) of run `rid`, empty when there are none."""
    return lake.read("predictions", ["brain_id", "node_id", "predicted"], filters=pc.field("run_id") == rid)


def metric_rows(rid: str, model_version: str, stage: str, scores: dict[str, float], details: dict) -> pa.Table:
    now = datetime.now(timezone.utc)
    rows = []
    for k, v in scores.items():
        split, metric = k.split("_", 1)
        rows.append({"run_id": rid, "model_version": model_version, "split": split, "metric": metric, "stage": stage,
                     "value": None if v != v else v, "recorded_at": now, "details": json.dumps(details)})
    return schema("metrics").table(rows)


def write_curves(folder, history: list[dict], scores: dict[str, float]) -> None:
    """A GNN run's TensorBoard log: per epoch its loss, training and validation macro-F1 and validation loss, and
    the run's final macro-F1 per split; one folder per run beside the encoder's own log
    (`paths.models/<model>/tensorboard/<run id>`), so `tensorboard --logdir <paths.models>` shows them together."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as w:
        for h in history:
            for key in ("loss", "train_f1", "val_f1", "val_loss"):
                if h.get(key) == h.get(key):  # nan: epoch 0 has no training loss
                    w.add_scalar(f"gnn/{key}", h[key], h["epoch"])
        for key, value in scores.items():
            if key.endswith("macro_f1") and value == value:
                w.add_scalar(f"macro_f1/{key.removesuffix('_macro_f1')}", value, 0)


def run_train_gnn(settings: Settings, model_version: str, kind: Inputs, gs: GraphSet | None = None, log=print) -> GnnRun:
    lake = Lake(settings.paths.lake)
    gs = gs or load_graphs(lake, model_version, merge_hemispheres=settings.atlas.merge_hemispheres)
    rid = run_id(gs, kind, settings)
    masks = split_score_masks(gs, settings)
    done = reusable_predictions(predictions_of(lake, rid), len(gs))
    if done is not None:
        log(f"train_gnn {rid}: predictions exist, nothing to train")
        done = gs.classes.of_area[done]  # stored as areas
        return GnnRun(rid, kind, model_version, done, score(gs, done, masks), trained=False)
    probs, fitted = fit_predict(settings, rid, gs, kind, masks, len(gs.classes), log)
    pred = probs.argmax(1)
    scores = score(gs, pred, masks)
    lake.write_arrow("predictions", prediction_table(rid, gs, kind, probs), "replace_partitions", {"run_id": [rid]})
    details = {"kind": kind, "best_epoch": fitted.best_epoch, "val_gain_low": fitted.val_gain_low,
               "epochs": len(fitted.history), "classes": gs.classes.description,
               "sampled": fitted.sampled, "graphs": gs.graph_hashes}
    lake.merge("metrics", metric_rows(rid, model_version, "train_gnn", scores, details))
    write_curves(Path(settings.paths.models) / model_version / "tensorboard" / rid, fitted.history, scores)
    log(f"train_gnn {rid}: kept epoch {fitted.best_epoch} (the best validation epoch's gain over epoch 0, "
        f"one-sided 95 % lower bound {fitted.val_gain_low:.3f}); macro-F1 test {scores['test_macro_f1']:.3f}, "
        f"transfer {scores['transfer_macro_f1']:.3f}")
    return GnnRun(rid, kind, model_version, pred, scores)
