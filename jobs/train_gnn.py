"""Train the 3-layer GAT on one feature model's surface graphs and predict every node's area.

    python jobs/train_gnn.py --config conf/local.yaml [--model contrastive-pmap-v1] [--inputs gnn+]

--inputs gnn: cytoarchitecture features only; gnn+: features, pmap vector and canonical coordinates.
Full-graph training up to gnn.full_graph_max_nodes nodes, neighbour-sampled above. Writes `predictions`
and `metrics`; a rerun on the same graphs and settings trains nothing.
"""

from cytolake.gnn.job import run_train_gnn
from cytolake.runner import lake_writer, parser, settings


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--model", help="feature model version (default: train.model_version)")
    p.add_argument("--inputs", choices=["gnn", "gnn+"], default="gnn+")
    a = p.parse_args()
    cfg = settings(a.config)
    with lake_writer(cfg, "train_gnn", a.wait):
        run = run_train_gnn(cfg, a.model or cfg.train.model_version, a.inputs)
    print(f"run {run.run_id}: " + ", ".join(f"{k} {v:.3f}" for k, v in run.scores.items() if k.endswith("macro_f1")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
