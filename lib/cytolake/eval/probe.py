"""How much area information an encoder's features carry: a linear (logistic regression) and a k-NN
probe of the area label, trained on labelled `train` patches and scored by macro-F1 on held-out
`test` sections and on the `transfer` brain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cytolake.atlas.classes import Classes, classes_of
from cytolake.atlas.registered import area_rows
from cytolake.config import Settings
from cytolake.eval.progress import Stages
from cytolake.lake import Lake
from cytolake.metrics import macro_f1
from cytolake.train.model import RANDOM_INIT, ensure_random_encoder, load_encoder, to_input
from cytolake.train.reader import PatchStream, snapshot_units


def embed(model: torch.nn.Module, lake: Lake, split: str, max_samples: int, seed: int = 0, batch: int = 128,
          workers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Backbone features and labels of (up to max_samples, drawn by the reader's seeded shuffle) labelled patches."""
    units = snapshot_units(lake, splits=[split], labelled=True)
    if not units:
        return np.zeros((0, model.feature_dim), np.float32), np.zeros(0, int)
    stream = PatchStream(units, batch, seed=seed, shuffle_buffer=4096, drop_last=False)
    feats, labels = [], []
    model.eval()
    with torch.no_grad():
        for b in stream.batches(workers):
            feats.append(model.features(to_input(b["image"])).numpy())
            labels.append(b["label"].numpy())
            if sum(len(x) for x in labels) >= max_samples:
                break
    return np.concatenate(feats)[:max_samples], np.concatenate(labels)[:max_samples]


def probe(model: torch.nn.Module, lake: Lake, max_samples: int = 3000, seed: int = 0, classes: Classes | None = None,
          stage=lambda what: None) -> dict[str, float]:
    """Macro-F1 of the linear and k-NN probes on `test` and `transfer` (classes seen in training only), labels
    taken as `classes` (atlas/classes.py; None: the areas). `stage` is called before each split's embedding."""
    def labelled(split):
        stage(f"embedding the {split} patches")
        x, y = embed(model, lake, split, max_samples, seed)
        return x, (y if classes is None else classes.label(y))

    xtr, ytr = labelled("train")
    if len(set(ytr)) < 2:
        raise RuntimeError("fewer than two labelled areas in the train split: nothing to probe")
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5)).fit(xtr, ytr)
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=10)).fit(xtr, ytr)
    out = {"train_samples": float(len(ytr)), "classes": float(len(set(ytr)))}
    for split in ("test", "transfer"):
        x, y = labelled(split)
        keep = np.isin(y, ytr)
        if not keep.any():
            continue
        x, y = x[keep], y[keep]
        for name, clf in (("linear", linear), ("knn", knn)):
            out[f"{name}_{split}_macro_f1"] = macro_f1(y, clf.predict(x))
        out[f"{split}_samples"] = float(len(y))
    return out


def run_probe(settings: Settings, version: str, max_samples: int = 3000,
              log=print) -> tuple[dict[str, dict[str, float]], Path]:
    """The probes of encoder `version` and of the random-init baseline (both under paths.models; the baseline
    is created from train.seed if absent, as the embed job does), written to paths.reports/probe-VERSION.json."""
    lake = Lake(settings.paths.lake)
    models = Path(settings.paths.models)
    ensure_random_encoder(settings, models / RANDOM_INIT)  # the same baseline as the report's random-init row
    classes = classes_of(area_rows(lake), settings.atlas.merge_hemispheres)
    stages = Stages("probe", 6, log)
    results = {v: probe(load_encoder(models / v), lake, max_samples, classes=classes,
                        stage=lambda what, v=v: stages(f"{v}: {what}")) for v in (version, RANDOM_INIT)}
    out = Path(settings.paths.reports) / f"probe-{version}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results, out


def probe_table(results: dict[str, dict[str, float]]) -> str:
    """The macro-F1 scores, one row per encoder."""
    keys = sorted({k for r in results.values() for k in r if "macro_f1" in k})
    rows = [f"{'encoder':24s} " + " ".join(f"{k:>26s}" for k in keys)]
    rows += [f"{name:24s} " + " ".join(f"{r.get(k, float('nan')):26.3f}" for k in keys) for name, r in results.items()]
    return "\n".join(rows)
