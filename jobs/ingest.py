"""Register the areas, the sparse pmaps and every brain's sections (from its manifest) in the lake.

    spark-submit jobs/ingest.py --config conf/cluster.yaml [--brains B01 B02]
    python jobs/ingest.py --config conf/local.yaml

Exit code 0: all sections ok; 3: some sections or brains failed (recorded with their errors); 1: the job failed.
"""

from cytolake.engines.spark import spark_session
from cytolake.ingest.job import run_ingest
from cytolake.console import print_ingest_summary
from cytolake.runner import finish, lake_writer, parser, settings


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--brains", nargs="*", help="only these brain ids (default: every brain in landing)")
    a = p.parse_args()
    cfg = settings(a.config)
    with lake_writer(cfg, "ingest", a.wait):
        summary = run_ingest(cfg, spark_session(cfg.spark), a.brains)
    print_ingest_summary(summary, cfg)
    return finish(summary.failed_sections + summary.failed_brains, "sections or brains")


if __name__ == "__main__":
    raise SystemExit(main())
