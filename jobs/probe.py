"""Probe a trained encoder against a random-initialised one of the same architecture: linear and k-NN
probes of the area label, macro-F1 on held-out test sections and the transfer brain.

    python jobs/probe.py --config conf/local.yaml [--model contrastive-pmap-v1] [--max-samples 3000]
"""

from cytolake.eval.probe import probe_table, run_probe
from cytolake.runner import parser, settings


def main() -> int:
    p = parser(__doc__, writes_lake=False)
    p.add_argument("--model", help="model version under paths.models (default: train.model_version)")
    p.add_argument("--max-samples", type=int, default=3000, help="labelled patches per split, at most (default 3000)")
    a = p.parse_args()
    cfg = settings(a.config)
    results, out = run_probe(cfg, a.model or cfg.train.model_version, a.max_samples)
    print(probe_table(results))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
