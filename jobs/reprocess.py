"""What a scheduler runs when brains land: ingest new or changed brains, tile what is new, embed the new
patches with the current model (`train.model_version`), rebuild the affected brains' graphs, predict.

    python jobs/reprocess.py --config conf/cluster.yaml [--wait 600]

It first checks every table (`cytolake check`): a damaged table stops the run before anything is written.
Every stage is incremental, so a run over an unchanged landing folder commits nothing. The whole run holds
the lake's writer lock: a run that overlaps another exits 4 at once naming the holder (or waits up to
--wait seconds, then finds the work done). Crontab and systemd examples: conf/schedule/.
Exit code 0: every stage ok; 3: some sections or brains failed (recorded in the lake, the rest processed);
1: a stage failed (the later stages are skipped); 4: the lake is locked by another run.
"""

from cytolake.console import print_stage_results
from cytolake.runner import EXIT_FAILED, finish, lake_writer, parser, settings


def main() -> int:
    a = parser(__doc__).parse_args()
    cfg = settings(a.config)
    with lake_writer(cfg, "reprocess", a.wait):
        # the stages (torch, PyG, Spark: ~4.4 s of imports) load once the lock is held: a scheduled run
        # that finds the lake locked, or --help, answers at once
        from cytolake.engines.spark import spark_session
        from cytolake.reprocess import run_reprocess

        results = run_reprocess(cfg, spark_session(cfg.spark))
    print_stage_results(results)
    if any(r.status == "failed" for r in results):
        return EXIT_FAILED
    return finish(sum(r.failed_items for r in results), "sections or brains")


if __name__ == "__main__":
    raise SystemExit(main())
