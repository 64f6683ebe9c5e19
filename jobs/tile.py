"""Tile every registered `ok` section into patches joined with their pmap vectors and MNI coordinates.

    spark-submit jobs/tile.py --config conf/cluster.yaml [--brains B01 ...]
    python jobs/tile.py --config conf/local.yaml

Only sections without current patches are tiled; a run over unchanged input commits nothing.
Exit code 0: all tiled; 3: some sections failed (marked `error` in `sections`); 1: the job failed.
"""

from cytolake.engines.spark import spark_session
from cytolake.runner import finish, lake_writer, parser, settings
from cytolake.tiling.job import run_tile


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--brains", nargs="*", help="only these brain ids (default: all)")
    a = p.parse_args()
    cfg = settings(a.config)
    with lake_writer(cfg, "tile", a.wait):
        summary = run_tile(cfg, spark_session(cfg.spark), a.brains)
    n = sum(summary.tiled.values())
    committed = f"(patches version {summary.version})" if summary.version is not None else "(nothing committed)"
    print(f"tiled {len(summary.tiled)} sections into {n} patches; committed brains "
          f"{summary.committed_brains or 'none'} {committed}")
    for (b, s), err in sorted(summary.failed.items()):
        print(f"  section {b}/{s}: {err}")
    return finish(len(summary.failed), "sections")


if __name__ == "__main__":
    raise SystemExit(main())
