"""Build each brain's surface graph for one feature model: a 3D cortex from the sections' masks, a
smoothed and decimated marching-cubes mesh, nodes tied to in-mask image locations, each with the features
of a patch cut and embedded at that location, pmap vectors and canonical coordinates, mesh edges. Brains
are built in parallel, one Spark task each.

    python jobs/build_graph.py --config conf/local.yaml [--model contrastive-pmap-v1] [--brains B01 ...]

Needs the model's encoder (`jobs/train_contrastive.py`; random-init is created on first use); the
`features` table is not read. A brain whose inputs are unchanged is skipped.
Exit code 0: all built or current; 3: some brains failed (listed); 1: the job failed (e.g. no encoder).
"""

from cytolake.engines.spark import spark_session
from cytolake.graph.job import run_build_graph
from cytolake.runner import finish, lake_writer, parser, settings


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--model", help="feature model version (default: train.model_version)")
    p.add_argument("--brains", nargs="*", help="only these brain ids (default: all)")
    a = p.parse_args()
    cfg = settings(a.config)
    with lake_writer(cfg, "build_graph", a.wait):
        summary = run_build_graph(cfg, spark_session(cfg.spark), a.model or cfg.train.model_version, a.brains)
    print(f"built {len(summary.built)} brain graph(s), {len(summary.skipped)} already current "
          f"(graph_nodes version {summary.version})")
    for b, err in sorted(summary.failed.items()):
        print(f"  brain {b}: {err}")
    return finish(len(summary.failed), "brains")


if __name__ == "__main__":
    raise SystemExit(main())
