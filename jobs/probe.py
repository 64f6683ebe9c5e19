"""Probe a trained encoder against a random-initialised one of the same architecture: linear and k-NN
probes of the area label, macro-F1 on held-out test sections and the transfer brain.

    python jobs/probe.py --config conf/local.yaml [--model contrastive-pmap-v1] [--max-samples 3000]
"""

import json
from pathlib import Path

import torch

from cytolake.eval.probe import probe
from cytolake.lake import Lake
from cytolake.runner import parser, settings
from cytolake.train.trainer import build_encoder, load_encoder


def main() -> int:
    p = parser(__doc__, writes_lake=False)
    p.add_argument("--model", help="model version under paths.models (default: train.model_version)")
    p.add_argument("--max-samples", type=int, default=3000)
    a = p.parse_args()
    cfg = settings(a.config)
    version = a.model or cfg.train.model_version
    lake = Lake(cfg.paths.lake)
    torch.manual_seed(cfg.train.seed)
    results = {version: probe(load_encoder(Path(cfg.paths.models) / version), lake, a.max_samples),
               "random-init": probe(build_encoder(cfg.train), lake, a.max_samples)}
    out = Path(cfg.paths.reports) / f"probe-{version}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    keys = sorted({k for r in results.values() for k in r if "macro_f1" in k})
    print(f"{'encoder':24s} " + " ".join(f"{k:>26s}" for k in keys))
    for name, r in results.items():
        print(f"{name:24s} " + " ".join(f"{r.get(k, float('nan')):26.3f}" for k in keys))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
