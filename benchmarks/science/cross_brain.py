"""Science: how far image features carry from one brain to another, measured on the training brains only.

    .venv/bin/python -m benchmarks.science.cross_brain --config conf/local.yaml [--models M ...]

For each feature model: the linear probe of the comparison (`eval/compare.py: linear_probe`'s logistic
regression on `gnn/train.py: node_inputs`) trained on one training brain's annotated `train` nodes and
scored (macro-F1) on another's, both ways, with the inputs standardised over the non-transfer brains
together (`gnn.standardise: pooled`) or first within each brain (`per_brain`, which needs no label: a
brain's staining shift is removed by it). Beside it, the label-free shift between the brains' feature
means in units of the within-brain sd, for every pair of brains, the unseen one's included. No test or
transfer label is read and nothing is scored on them, so what this says may decide a method; their
unlabelled features enter the standardisation as they do in the pipeline. Baseline in the same run: the
pooled standardisation.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression

from cytolake.config import load_config
from cytolake.gnn.data import load_graphs
from cytolake.gnn.train import node_inputs
from cytolake.lake import Lake
from cytolake.metrics import macro_f1


def cross_brain_f1(x: np.ndarray, y: np.ndarray, brain: np.ndarray, labelled: np.ndarray, a: str, b: str) -> float:
    """macro-F1 on brain `b`'s labelled nodes of the probe trained on brain `a`'s."""
    tr, te = labelled & (brain == a), labelled & (brain == b)
    return macro_f1(y[te], LogisticRegression(max_iter=1000, C=0.5).fit(x[tr], y[tr]).predict(x[te]))


def mean_shift(x: np.ndarray, brain: np.ndarray, a: str, b: str) -> float:
    """RMS over feature dimensions of the difference of brains `a` and `b`'s means, in within-brain sd units."""
    mu = [x[brain == k].mean(0) for k in (a, b)]
    sd = np.sqrt(np.mean([x[brain == k].var(0) for k in (a, b)], axis=0)) + 1e-9
    return float(np.sqrt(np.mean(((mu[0] - mu[1]) / sd) ** 2)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--models", nargs="+")
    a = p.parse_args(argv)
    settings = load_config(a.config)
    lake = Lake(settings.paths.lake)
    figures = {}
    for model in a.models or settings.evaluate.models:
        gs = load_graphs(lake, model, merge_hemispheres=settings.atlas.merge_hemispheres)
        labelled = (gs.split == "train") & (gs.label >= 0)
        brains = sorted(set(gs.brain[labelled].tolist()))
        if len(brains) < 2:
            raise SystemExit(f"{model}: annotated train nodes in {len(brains)} brain(s); cross-brain needs two")
        pooled = node_inputs(gs, "gnn", "pooled")
        pairs = [(s, t) for s in brains for t in brains if s != t]
        row = {"pairs": [f"{s}->{t}" for s, t in pairs]}
        for name, x in (("pooled", pooled), ("per_brain", node_inputs(gs, "gnn", "per_brain"))):
            row[name] = [round(cross_brain_f1(x, gs.label, gs.brain, labelled, s, t), 4) for s, t in pairs]
        every = sorted(set(gs.brain.tolist()))  # the unseen brain too: its features, no label
        row["mean_shift_sd"] = {f"{a}-{b}": round(mean_shift(pooled, gs.brain, a, b), 3)
                                for i, a in enumerate(every) for b in every[i + 1:]}
        figures[model] = row
        print(f"{model}: {row}", file=sys.stderr, flush=True)
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
