"""The seed's comparison on one lake: pmap-argmax, linear probe, GNN and GNN+ for each feature model in
`evaluate.models` (contrastive-pmap, supervised, random-init), macro-F1 on the test sections and the
transfer brain; per-area F1, confusion matrix, predicted-area maps, a t-SNE of the features and a k-means
parcellation scored by ARI/NMI. Writes `metrics` and paths.reports/<run>/report.md, and prints both.

    python jobs/evaluate.py --config conf/local.yaml

Needs the graphs of every model (jobs/embed.py and jobs/build_graph.py with --model <each>).
"""

from cytolake.eval.job import run_evaluate
from cytolake.runner import lake_writer, parser, settings


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--models", nargs="*", help="feature models to compare (default: evaluate.models)")
    a = p.parse_args()
    cfg = settings(a.config)
    if a.models:
        cfg = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"models": tuple(a.models)})})
    with lake_writer(cfg, "evaluate", a.wait):
        run_evaluate(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
